"""eigenwatch — client for eigenwatchd.

    from eigenwatch import Client, Sender
    c = Client()                                   # $EIGENWATCH_ADDRESS or the daemon's defaults
    c.ingest("layer.3", hidden)                    # numpy (f32/f64/f16) or torch (incl. bf16)
    print(c.query("layer.3", ["entropy", "erank"]).metrics)

    s = Sender()                                   # for training loops: never raises, never blocks
    s.send("layer.3", hidden)
    s.send("layer.3", LabelledRows(hidden, classes))   # each row's label: grouped metrics, dsmi

    for (stream, metric), s in c.history(run="job").items():   # numpy arrays by step
        print(stream, metric, s.step[-1], s.value[-1])

    ps = PairedStream("run-1", "clip", dims=(512, 512))   # paired rows: sce, sce_text, nullify
    ps.log(step, text_emb, image_emb)

    ts = TokenStream("run-1", "policy", columns=("entropy", "logp", "advantage"))
    ts.log(step, entropy=ent, logp=logp, advantage=adv, mask=mask, lengths=lengths)

PyTorch: ``eigenwatch.torch.watch(model, layers=[...], step=..., on_metrics=...)``. TokenStream
and StatsStream (eigenwatch.rl) take torch tensors or numpy arrays and import torch only when
given a tensor or on_metrics.
"""
from ._wire import DEFAULT_TCP, LabelledRows, Pairs, default_address, encode_rows
from .client import (Client, EigenwatchError, IngestResult, PingResult, QueryResult, Series,
                     StreamInfo, Subscription)
from .paired import PairedStream
from .rl import StatsStream, TokenStream
from .sender import Sender, SenderStats

__all__ = ["Client", "Sender", "SenderStats", "EigenwatchError", "QueryResult", "StreamInfo",
           "IngestResult", "PingResult", "Series", "Subscription", "encode_rows",
           "default_address", "DEFAULT_TCP", "TokenStream", "StatsStream", "LabelledRows",
           "PairedStream", "Pairs"]
__version__ = "0.1.0"

/* state/state_priv.h — what state/save.c (writing, ew_stream_clone) and state/load.c (reading)
 * share and nothing else sees: the saved state's format (docs/STATE.md).
 *
 *   header   "EWSTATE\0"  u32 version (2; 1 is read too)  u32 flags (0)
 *   section  u32 tag  u64 length  payload        (repeated; a reader skips tags it does not know)
 *   end      u32 "END\0"  u64 0
 *   trailer  u32 CRC-32C of every byte before it
 *
 * All integers and floats little-endian, floats as their IEEE bits: a load reproduces the state
 * bit for bit, so a loaded stream answers every metric exactly as the saved one and saving it
 * again gives the same bytes. Sections: CONF (the configuration), STRM (counters), MALL (the
 * all-rows moments), WIND (window rows in arrival order and their moments), LROP (the live
 * estimate; LIVE, the Oja estimate of earlier states, is read and dropped), WARM (warm start of top-k vectors). Spectrum caches are not saved: they are
 * recomputed, deterministically, from the same state. After the library's own sections come the
 * embedder's (tags starting with a lowercase letter: ew_stream_save_ex), carried verbatim and
 * handed back by ew_stream_load_ex once the checksum is verified.
 *
 * The bytes go through a caller-supplied writer and come from a caller-supplied reader (a file,
 * a socket, a buffer): the library touches no file. A load builds a new stream and hands it over
 * only when every section parsed, every number is one ingest can produce (finite, in range,
 * at most 2^53 rows: ew__check_moments and the kinds' loads; a checksum only proves the bytes
 * are the ones written, not that a sane writer wrote them) and the checksum matched; anything
 * else is EW_ESTATE with a sentence, and nothing is created. */
#ifndef EW_STATE_PRIV_H
#define EW_STATE_PRIV_H

#include "../ew_internal.h"

#define MAGIC "EWSTATE"
#define VERSION 4u /* the newest written (a matrix stream's state is written as 2, a tokens or
                      * stats stream's as 3); 2: CONF carries the fields of EW_CONFIG_MAP whose
                      * since is 2 (80 bytes); 3: and `kind` and `reduce` (96 bytes); a tokens
                      * stream's COLS or a stats stream's SHAP follows CONF; 4: and `features`,
                      * `sigma`, `rff_dim` (120 bytes); a paired stream's dims in SHAP */
#define TAG(a, b, c, d) ((uint32_t)(a) | (uint32_t)(b) << 8 | (uint32_t)(c) << 16 | (uint32_t)(d) << 24)
#define T_CONF TAG('C', 'O', 'N', 'F')
#define T_STRM TAG('S', 'T', 'R', 'M')
#define T_MALL TAG('M', 'A', 'L', 'L')
#define T_WIND TAG('W', 'I', 'N', 'D')
#define T_LIVE TAG('L', 'I', 'V', 'E') /* the fixed-rate Oja estimate of 0.1 states: skipped */
#define T_LROP TAG('L', 'R', 'O', 'P') /* the random-order block power estimate (live/rop.c) */
#define T_WARM TAG('W', 'A', 'R', 'M')
#define T_COLS TAG('C', 'O', 'L', 'S') /* a tokens stream's column names, right after CONF */
#define T_SHAP TAG('S', 'H', 'A', 'P') /* a stats stream's shape or a paired stream's dims, right after CONF */
#define T_END TAG('E', 'N', 'D', 0)

/* ---- CONF: the configuration, one 8-byte value per saved field of EW_CONFIG_MAP in table
 * order (integers and enumerations as u64, REAL_OFF fields as f64 bits). A state of version v
 * carries the fields whose since is at most v; a loaded state of an earlier version gives the
 * later ones their `was` value (exact_max_dim: the state was exact up to its own d). ---- */

#define SAVED(flags) (((flags) & EW_CF_SAVED) != 0)
#define XX(member, wire, old, type, def, lo, hi, kinds, flags, since, ...) +((since) > VERSION)
_Static_assert(0 EW_CONFIG_MAP(XX) == 0, "no field is newer than the state format");
#undef XX

/* The CONF section's length in a state of format `version` (save.c). */
uint64_t ew__state_conf_len(uint32_t version);

/* A tokens stream's COLS section's length (load.c). */
uint64_t ew__state_cols_len(const ew_config_t *c);

/* The LROP section's length for a buffer holding `fill` rows and `nh` heavy rows (save.c). */
uint64_t ew__state_rop_len(const ew__rop_t *o, uint64_t fill, uint64_t nh);

#endif /* EW_STATE_PRIV_H */

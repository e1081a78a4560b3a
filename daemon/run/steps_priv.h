/* steps_priv.h — what steps.c (staging and completing steps) and steps_index.c (the index of
 * pending steps) share; nothing else sees it. */
#ifndef EWD_STEPS_PRIV_H
#define EWD_STEPS_PRIV_H

#include "run/run.h"

typedef struct staged {
  struct staged *next;
  uint64_t ord;   /* arrival number within the stream */
  uint32_t rank;
  int producer;   /* -1 = none */
  uint64_t seq;
  void *data;
  ew_dtype_t dtype;
  size_t n, d, bytes;
  size_t plen; /* a packed tokens batch's bytes (then n is its tokens), else 0 */
  uint32_t *labels; /* rows: n labels, or NULL */
} staged_t;

typedef struct pstep {
  uint64_t step;
  double first;                /* monotonic time of its first batch */
  staged_t *head, *tail;
  struct pstep *older, *newer; /* creation order (first ascending) */
} pstep_t;

typedef struct {
  uint64_t latest, done;
  bool has_latest, has_done;
} rank_t;

struct ewd_steps {
  uint32_t world;
  rank_t *ranks;
  pstep_t **heap;        /* pending steps, a min-heap by step: heap[0] completes next */
  size_t nheap, capheap;
  pstep_t **slots;       /* pending steps by step: open addressing, linear probing, load <= 1/2 */
  size_t capslots;       /* a power of two (0: none yet) */
  pstep_t *oldest, *newest; /* creation order */
  staged_t *late_head, *late_tail;
  double late_first;
  size_t bytes;          /* staged here (pending steps and late batches) */
  uint64_t ord;
  uint64_t late_batches, partial_steps;
  bool listed;           /* in srv->staging */
  uint32_t saved_d;      /* read from a saved stream (steps_save.c): its rows' width; else 0 */
};

/* qsort's order of staged_t pointers: rank ascending, then arrival (the order a step applies). */
int steps_by_rank_then_arrival(const void *a, const void *b);
/* What a staged batch of `payload` bytes costs, counted against max_staged_bytes (steps.c). */
size_t steps_entry_cost(size_t payload, bool new_step);

/* The index of pending steps (steps_index.c): a hash table by step finds a batch's step, a
 * min-heap by step gives the lowest, a list in creation order the timed-out ones. */
/* The pending step `step`, or NULL. */
pstep_t *steps_find_step(const ewd_steps_t *sp, uint64_t step);
/* Room for one more pending step in the heap and the table; -1 (nothing changed) when out of
 * memory. */
int steps_reserve_step(ewd_steps_t *sp);
/* Adds p (room reserved) to the heap, the table and the creation list's new end. */
void steps_insert_step(ewd_steps_t *sp, pstep_t *p);
/* The lowest pending step (NULL: none), and taking it out of the index. */
pstep_t *steps_lowest(const ewd_steps_t *sp);
pstep_t *steps_pop_lowest(ewd_steps_t *sp);

#endif

/* steps_index.c — the index of a stream's pending steps (steps.c), so that a batch costs
 * O(log P) however many steps wait: open addressing by step (linear probing, load ≤ 1/2) finds a
 * batch's step, a min-heap by step gives the next to complete, and a doubly linked list in
 * creation order gives the timed-out ones from its old end. */
#include "run/steps_priv.h"

#include <stdlib.h>
#include <string.h>

/* ---- the index of pending steps ---- */

static size_t slot_of(uint64_t step, size_t cap) {
  uint64_t z = step + 0x9e3779b97f4a7c15ull; /* splitmix64's finaliser: steps are consecutive */
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return (size_t)(z ^ (z >> 31)) & (cap - 1);
}

pstep_t *steps_find_step(const ewd_steps_t *sp, uint64_t step) {
  if (!sp->capslots)
    return NULL;
  for (size_t i = slot_of(step, sp->capslots);; i = (i + 1) & (sp->capslots - 1)) {
    pstep_t *p = sp->slots[i];
    if (!p || p->step == step)
      return p;
  }
}

static void slot_put(pstep_t **slots, size_t cap, pstep_t *p) {
  size_t i = slot_of(p->step, cap);
  while (slots[i])
    i = (i + 1) & (cap - 1);
  slots[i] = p;
}

/* Room for one more pending step in the heap and the table; -1 (nothing changed) when out of
 * memory. */
int steps_reserve_step(ewd_steps_t *sp) {
  if (sp->nheap == sp->capheap) {
    size_t nc = sp->capheap ? 2 * sp->capheap : 16;
    pstep_t **h = realloc(sp->heap, nc * sizeof *h);
    if (!h)
      return -1;
    sp->heap = h;
    sp->capheap = nc;
  }
  if (2 * (sp->nheap + 1) > sp->capslots) {
    size_t nc = sp->capslots ? 2 * sp->capslots : 32;
    pstep_t **t = calloc(nc, sizeof *t);
    if (!t)
      return -1;
    for (size_t i = 0; i < sp->nheap; i++)
      slot_put(t, nc, sp->heap[i]);
    free(sp->slots);
    sp->slots = t;
    sp->capslots = nc;
  }
  return 0;
}

static void steps_slot_del(ewd_steps_t *sp, uint64_t step) {
  size_t mask = sp->capslots - 1, i = slot_of(step, sp->capslots);
  while (sp->slots[i]->step != step)
    i = (i + 1) & mask;
  for (size_t j = i;;) { /* backward shift: no tombstones */
    j = (j + 1) & mask;
    if (!sp->slots[j])
      break;
    size_t k = slot_of(sp->slots[j]->step, sp->capslots);
    bool stays = i <= j ? (i < k && k <= j) : (i < k || k <= j);
    if (!stays) {
      sp->slots[i] = sp->slots[j];
      i = j;
    }
  }
  sp->slots[i] = NULL;
}

/* Adds a new pending step (room reserved by reserve_step). */
void steps_insert_step(ewd_steps_t *sp, pstep_t *p) {
  slot_put(sp->slots, sp->capslots, p);
  size_t i = sp->nheap++;
  while (i > 0 && sp->heap[(i - 1) / 2]->step > p->step) {
    sp->heap[i] = sp->heap[(i - 1) / 2];
    i = (i - 1) / 2;
  }
  sp->heap[i] = p;
  p->older = sp->newest;
  p->newer = NULL;
  *(sp->newest ? &sp->newest->newer : &sp->oldest) = p;
  sp->newest = p;
}

pstep_t *steps_lowest(const ewd_steps_t *sp) { return sp->nheap ? sp->heap[0] : NULL; }

/* Takes the lowest pending step out of the index. */
pstep_t *steps_pop_lowest(ewd_steps_t *sp) {
  pstep_t *p = sp->heap[0], *last = sp->heap[--sp->nheap];
  size_t i = 0, n = sp->nheap;
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= n)
      break;
    if (c + 1 < n && sp->heap[c + 1]->step < sp->heap[c]->step)
      c++;
    if (sp->heap[c]->step >= last->step)
      break;
    sp->heap[i] = sp->heap[c];
    i = c;
  }
  if (n)
    sp->heap[i] = last;
  steps_slot_del(sp, p->step);
  *(p->older ? &p->older->newer : &sp->oldest) = p->newer;
  *(p->newer ? &p->newer->older : &sp->newest) = p->older;
  return p;
}

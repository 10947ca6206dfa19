/* waits.c -- the table of blocked waits (see waits.h).  One leaf mutex. */
#include <stdlib.h>
#include "manygil.h"
#include "core/sync.h"
#include "core/waits.h"

static struct {
    mg__mutex_t mutex;
    mg__wait_t *head;           /* guarded by mutex */
    size_t count;               /* guarded by mutex */
} waits = { .mutex = MG__MUTEX_INIT };

void
mg__waits_add(mg__wait_t *w)
{
    mg__mutex_lock(&waits.mutex);
    w->prev = NULL;
    w->next = waits.head;
    if (waits.head != NULL)
        waits.head->prev = w;
    waits.head = w;
    waits.count++;
    mg__mutex_unlock(&waits.mutex);
}

void
mg__waits_remove(mg__wait_t *w)
{
    mg__mutex_lock(&waits.mutex);
    if (w->prev != NULL)
        w->prev->next = w->next;
    else
        waits.head = w->next;
    if (w->next != NULL)
        w->next->prev = w->prev;
    waits.count--;
    mg__mutex_unlock(&waits.mutex);
}

int
mg__waits_snapshot(mg__wait_t **out, size_t *n)
{
    mg__mutex_lock(&waits.mutex);
    mg__wait_t *arr = malloc((waits.count ? waits.count : 1) * sizeof *arr);
    if (arr == NULL) {
        mg__mutex_unlock(&waits.mutex);
        return MG_ENOMEM;
    }
    size_t i = 0;
    for (mg__wait_t *w = waits.head; w != NULL; w = w->next) {
        arr[i] = *w;
        arr[i].prev = arr[i].next = NULL;
        i++;
    }
    mg__mutex_unlock(&waits.mutex);
    *out = arr;
    *n = i;
    return 0;
}

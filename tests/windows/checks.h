/* PASS/FAIL reporting shared by the Windows test programs (wintest.c, wintls.c): one line per
 * check, counted, and the handle's last error for the FAIL lines. Included once per program. */
#ifndef ISOTCP_WINDOWS_CHECKS_H
#define ISOTCP_WINDOWS_CHECKS_H

#include <stdarg.h>
#include <stdio.h>

#include "isotcp.h"

static int passed, failed;

static void pass(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    printf("PASS ");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    passed++;
}

static void fail(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    printf("FAIL ");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    failed++;
}

/* The handle's last error message, or the thread's when c is NULL (static buffer: one at a
 * time). */
static const char *why(const iso_conn *c) {
    static char buf[1024];
    if (c) iso_last_error(c, buf, sizeof buf, NULL);
    else iso_thread_last_error(buf, sizeof buf, NULL);
    return buf;
}

#endif

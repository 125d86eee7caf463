/*
 * Test-only stand-in for bcryptprimitives.dll, which Wine 8 does not provide. Rust's standard
 * library imports ProcessPrng from it (random keys of HashMap and the like). This DLL forwards
 * the request to RtlGenRandom (advapi32's SystemFunction036). Not for shipping: real Windows
 * (8 and later) has the system DLL.
 */
#include <windows.h>
#include <ntsecapi.h>

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len) {
    /* RtlGenRandom takes a ULONG length: fill larger requests in pieces. */
    while (len > 0) {
        ULONG chunk = len > 0x10000000 ? 0x10000000 : (ULONG)len;
        if (!RtlGenRandom(data, chunk)) return FALSE;
        data += chunk;
        len -= chunk;
    }
    return TRUE;
}

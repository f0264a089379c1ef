/* Wine 8 has no bcryptprimitives.dll, and Rust's standard library (1.78 and later) takes its
 * random numbers from ProcessPrng there: without this DLL a Rust .exe ends silently under Wine
 * before main. This stand-in forwards to BCryptGenRandom, which Wine has. Built by .ci/wine-tests
 * into the test prefix only; never shipped. */
#include <windows.h>
#include <bcrypt.h>

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
    /* BCryptGenRandom takes a ULONG length: feed a longer request in pieces. */
    while (len > 0) {
        ULONG chunk = len > 0x40000000 ? 0x40000000 : (ULONG)len;
        if (!BCRYPT_SUCCESS(BCryptGenRandom(NULL, data, chunk, BCRYPT_USE_SYSTEM_PREFERRED_RNG)))
            return FALSE;
        data += chunk;
        len -= chunk;
    }
    return TRUE;
}

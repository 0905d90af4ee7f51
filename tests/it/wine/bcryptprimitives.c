/* A stand-in for Windows' bcryptprimitives.dll, for running the agent's
 * .exe under a Wine that lacks it (Debian 12's Wine 8). Rust's standard
 * library (1.78 and later) imports ProcessPrng from that DLL for its
 * random numbers; this one fills the buffer from RtlGenRandom
 * (advapi32's SystemFunction036), which Wine 8 has. Windows 10 and later
 * ship the real DLL: this file is never needed there.
 * Built by tests/it/windows_agent.rs with MinGW's gcc and the .def file
 * beside it (which exports the undecorated name). */
#include <windows.h>
#include <ntsecapi.h>

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
    while (len > 0) {
        ULONG chunk = len > 0x7fffffff ? 0x7fffffff : (ULONG)len;
        if (!RtlGenRandom(data, chunk))
            return FALSE;
        data += chunk;
        len -= chunk;
    }
    return TRUE;
}

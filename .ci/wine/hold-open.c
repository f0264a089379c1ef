/* hold-open FILE: opens FILE as Excel does a workbook it has open (others may read it, nobody
 * may write, rename over or delete it), prints "held" and keeps it open until its standard input
 * ends. The Wine tests use it to stand in for "the results file is open in another program":
 * Wine enforces share modes between Windows processes, not against Linux ones. */
#include <windows.h>
#include <stdio.h>

int wmain(int argc, wchar_t **argv)
{
    if (argc != 2) {
        fputs("usage: hold-open FILE\n", stderr);
        return 2;
    }
    HANDLE file = CreateFileW(argv[1], GENERIC_READ | GENERIC_WRITE, FILE_SHARE_READ, NULL,
                              OPEN_EXISTING, FILE_ATTRIBUTE_NORMAL, NULL);
    if (file == INVALID_HANDLE_VALUE) {
        fprintf(stderr, "hold-open: cannot open: error %lu\n", GetLastError());
        return 1;
    }
    puts("held");
    fflush(stdout);
    char buf[64];
    while (fread(buf, 1, sizeof buf, stdin) > 0) {
    }
    CloseHandle(file);
    return 0;
}

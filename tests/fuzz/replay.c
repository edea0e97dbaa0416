/* replay.c -- main() for a fuzz target built without libFuzzer: runs LLVMFuzzerTestOneInput on
 * every file named on the command line, or every file in a named directory (the committed
 * corpora, on every ctest run). Fails when nothing ran. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        return -1;
    }
    size_t cap = 1 << 16, n = 0;
    uint8_t *buf = malloc(cap);
    for (size_t r; buf && (r = fread(buf + n, 1, cap - n, f)) > 0;) {
        n += r;
        if (n == cap) {
            uint8_t *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
    }
    fclose(f);
    if (!buf)
        return -1;
    LLVMFuzzerTestOneInput(buf, n);
    free(buf);
    return 0;
}

int main(int argc, char **argv)
{
    int runs = 0;
    for (int i = 1; i < argc; i++) {
        DIR *d = opendir(argv[i]);
        if (!d) {
            if (run_file(argv[i]))
                return 1;
            runs++;
            continue;
        }
        for (struct dirent *de; (de = readdir(d));) {
            char path[4096];
            if (de->d_name[0] == '.')
                continue;
            int k = snprintf(path, sizeof path, "%s/%s", argv[i], de->d_name);
            if (k < 0 || (size_t)k >= sizeof path || run_file(path)) {
                closedir(d);
                return 1;
            }
            runs++;
        }
        closedir(d);
    }
    printf("%s: %d inputs ok\n", argv[0], runs);
    return runs > 0 ? 0 : 1;
}

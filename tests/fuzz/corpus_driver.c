/* corpus_driver.c - runs the fuzz target's entry point over files and
 * folders given on the command line, without libFuzzer: each file whole and
 * truncated at a spread of lengths. Built with ASan + UBSan for ctest. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static long n_inputs;

static int run_file(const char *path) {
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        fprintf(stderr, "cannot open %s\n", path);
        return -1;
    }
    fseek(fp, 0, SEEK_END);
    long size = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    uint8_t *data = malloc(size > 0 ? (size_t)size : 1);
    if (!data || fread(data, 1, (size_t)size, fp) != (size_t)size) {
        fprintf(stderr, "cannot read %s\n", path);
        fclose(fp);
        free(data);
        return -1;
    }
    fclose(fp);
    /* Whole, then truncated: every length up to 512, then 64 spread lengths. */
    LLVMFuzzerTestOneInput(data, (size_t)size);
    n_inputs++;
    for (long n = 0; n < size && n < 512; n++, n_inputs++) {
        /* A fresh copy of exactly n bytes, so ASan sees reads past the end. */
        uint8_t *prefix = malloc(n > 0 ? (size_t)n : 1);
        memcpy(prefix, data, (size_t)n);
        LLVMFuzzerTestOneInput(prefix, (size_t)n);
        free(prefix);
    }
    for (int k = 1; k < 64 && size > 512; k++, n_inputs++) {
        size_t n = 512 + (size_t)((size - 512) * (long)k / 64);
        uint8_t *prefix = malloc(n);
        memcpy(prefix, data, n);
        LLVMFuzzerTestOneInput(prefix, n);
        free(prefix);
    }
    free(data);
    return 0;
}

static int run_path(const char *path) {
    struct stat st;
    if (stat(path, &st) != 0) {
        fprintf(stderr, "no such file or folder: %s\n", path);
        return -1;
    }
    if (!S_ISDIR(st.st_mode)) return run_file(path);
    DIR *dir = opendir(path);
    if (!dir) return -1;
    struct dirent *e;
    int rc = 0;
    while ((e = readdir(dir)) != NULL) {
        if (e->d_name[0] == '.') continue;
        char child[4096];
        snprintf(child, sizeof child, "%s/%s", path, e->d_name);
        if (stat(child, &st) == 0 && S_ISREG(st.st_mode) && strstr(e->d_name, ".gguf")) rc |= run_file(child);
    }
    closedir(dir);
    return rc;
}

int main(int argc, char **argv) {
    int rc = 0;
    for (int i = 1; i < argc; i++) rc |= run_path(argv[i]);
    printf("%ld inputs run through the GGUF reader without a sanitizer report\n", n_inputs);
    if (n_inputs == 0) {
        fprintf(stderr, "no .gguf inputs found\n");
        return 1;
    }
    return rc ? 1 : 0;
}

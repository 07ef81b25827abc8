// Replays files through a fuzz target's LLVMFuzzerTestOneInput without libFuzzer, so CI needs only g++ (with
// -fsanitize=address,undefined the replay still catches out-of-bounds reads, leaks and undefined behaviour).
//   driver DIR_OR_FILE...   every regular file under each directory (sorted, not recursive), or the file itself
// Each input is copied into a buffer of exactly its size, as libFuzzer does, so a read one byte past the end is
// caught. Prints one line per directory and a total; exit 0 when every input ran (a finding aborts the process).
#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t * data, size_t size);

static bool run_file(const std::string & path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        std::fprintf(stderr, "driver: cannot read %s\n", path.c_str());
        return false;
    }
    const std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    // A fresh heap block of exactly the input's size (vector capacity may be larger; new[] of n is not padded).
    std::unique_ptr<uint8_t[]> buf(new uint8_t[bytes.size() ? bytes.size() : 1]);
    if (!bytes.empty()) std::memcpy(buf.get(), bytes.data(), bytes.size());
    if (std::getenv("TL_FUZZ_VERBOSE")) std::fprintf(stderr, "driver: %s (%zu bytes)\n", path.c_str(), bytes.size());
    LLVMFuzzerTestOneInput(buf.get(), bytes.size());
    return true;
}

int main(int argc, char ** argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: %s DIR_OR_FILE...\n", argv[0]);
        return 2;
    }
    size_t total = 0;
    bool ok = true;
    for (int a = 1; a < argc; a++) {
        const std::string arg = argv[a];
        struct stat st;
        if (stat(arg.c_str(), &st) != 0) {
            std::fprintf(stderr, "driver: %s does not exist\n", arg.c_str());
            ok = false;
            continue;
        }
        if (!S_ISDIR(st.st_mode)) {
            ok = run_file(arg) && ok;
            total++;
            continue;
        }
        std::vector<std::string> files;
        if (DIR * d = opendir(arg.c_str())) {
            while (dirent * e = readdir(d)) {
                const std::string p = arg + "/" + e->d_name;
                struct stat fs;
                if (e->d_name[0] != '.' && stat(p.c_str(), &fs) == 0 && S_ISREG(fs.st_mode)) files.push_back(p);
            }
            closedir(d);
        }
        std::sort(files.begin(), files.end());
        for (const std::string & f : files) ok = run_file(f) && ok;
        std::printf("%s: %zu inputs\n", arg.c_str(), files.size());
        total += files.size();
    }
    std::printf("replayed %zu inputs, no findings\n", total);
    return ok ? 0 : 1;
}

// GGUF v2/v3 reader over mmap (https://github.com/ggml-org/ggml/blob/master/docs/gguf.md).
// Every length, count and offset read from the file is bounds-checked: a hostile or truncated file yields an
// EngineException(MODEL_CORRUPT), never an out-of-bounds read.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "errors.h"

namespace tl {

enum class GgufType : uint32_t {
    UINT8 = 0,
    INT8 = 1,
    UINT16 = 2,
    INT16 = 3,
    UINT32 = 4,
    INT32 = 5,
    FLOAT32 = 6,
    BOOL = 7,
    STRING = 8,
    ARRAY = 9,
    UINT64 = 10,
    INT64 = 11,
    FLOAT64 = 12,
};

// One metadata value. Scalars: numeric ones are held in both `i` (exact for integers) and `f`; bools in `i` (0/1).
// Strings in `str`. Arrays: element type in `array_type`, elements in `items` (nested arrays allowed).
struct GgufValue {
    GgufType type = GgufType::UINT8;
    GgufType array_type = GgufType::UINT8;
    int64_t i = 0;  // integer value (uint64 above INT64_MAX is clamped: GGUF metadata never needs it)
    double f = 0.0; // numeric value as double
    std::string str;
    std::vector<GgufValue> items;

    bool is_numeric() const;
};

struct GgufTensorInfo {
    std::string name;
    uint32_t n_dims = 0;
    int64_t ne[4] = {1, 1, 1, 1}; // ne[0] is the contiguous (row) dimension, as in ggml
    uint32_t type = 0;            // raw ggml type id (quant::Type; quant::traits() is null for an id nobody knows)
    uint64_t offset = 0;          // relative to the data section
    uint64_t n_bytes = 0;         // computed from type and shape (0, and data null, for an unknown type id)
    const uint8_t * data = nullptr;

    int64_t n_elements() const { return ne[0] * ne[1] * ne[2] * ne[3]; }
};

class GgufFile {
public:
    // Throws EngineException: MODEL_NOT_FOUND if the path cannot be opened, MODEL_CORRUPT if malformed.
    explicit GgufFile(const std::string & path);
    // The same reader over bytes already in memory (the fuzz targets in native/fuzz use it). The bytes are not copied:
    // they must outlive this object. `name` stands in for the path in error messages.
    GgufFile(const uint8_t * data, size_t size, const std::string & name);
    ~GgufFile();
    GgufFile(const GgufFile &) = delete;
    GgufFile & operator=(const GgufFile &) = delete;

    uint32_t version() const { return version_; }
    size_t file_size() const { return size_; }
    const std::string & path() const { return path_; }
    // The bytes are read through the mapping long after the constructor (a reload re-reads every tensor). A file
    // replaced by rename or deleted is harmless (the mapping keeps the old inode), but one rewritten in place is not:
    // its pages now hold other bytes, and past a truncation a read raises SIGBUS. Throws MODEL_CORRUPT when the
    // file's size or modification time differs from when it was mapped; a no-op for in-memory bytes.
    void check_unchanged() const;

    const std::map<std::string, GgufValue> & metadata() const { return kv_; }
    const GgufValue * find(const std::string & key) const;
    // Typed getters: `def` when absent; MODEL_CORRUPT when present with an incompatible type.
    std::string get_string(const std::string & key, const std::string & def = "") const;
    int64_t get_int(const std::string & key, int64_t def) const;
    double get_float(const std::string & key, double def) const;
    bool get_bool(const std::string & key, bool def) const;
    std::vector<std::string> get_string_array(const std::string & key) const; // empty when absent
    std::vector<double> get_float_array(const std::string & key) const;
    std::vector<int64_t> get_int_array(const std::string & key) const;

    const std::vector<GgufTensorInfo> & tensors() const { return tensors_; }
    const GgufTensorInfo * find_tensor(const std::string & name) const;

private:
    std::string path_;
    int fd_ = -1;
    const uint8_t * base_ = nullptr;
    size_t size_ = 0;
    bool mapped_ = false;  // base_ is our mmap (file constructor), not the caller's buffer
    int64_t mtime_ns_ = 0; // st_mtim when mapped, for check_unchanged()
    uint32_t version_ = 0;
    std::map<std::string, GgufValue> kv_;
    std::vector<GgufTensorInfo> tensors_;
    std::map<std::string, size_t> tensor_index_;

    void parse();
};

} // namespace tl

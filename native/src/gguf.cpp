#include "gguf.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <limits>

#include "quant/formats.h"

namespace tl {

namespace {

constexpr uint32_t GGUF_MAGIC = 0x46554747; // "GGUF" little-endian
// Limits that no real model comes near; they bound what a hostile header can make us allocate.
constexpr uint64_t MAX_STRING_BYTES = 1ull << 24;
constexpr uint64_t MAX_ARRAY_ITEMS = 1ull << 24;
constexpr uint64_t MAX_KV = 1ull << 16;
constexpr uint64_t MAX_TENSORS = 1ull << 16;
constexpr int MAX_NESTING = 4;

// Sequential reader over the mapped bytes; every read checks the remaining length.
struct Cursor {
    const uint8_t * p;
    const uint8_t * end;
    const std::string & path;

    [[noreturn]] void corrupt(const std::string & what) const {
        fail(ErrorCode::MODEL_CORRUPT, "GGUF file '" + path + "' is corrupt: " + what);
    }
    void need(uint64_t n, const char * what) const {
        if ((uint64_t) (end - p) < n) corrupt(std::string("truncated while reading ") + what);
    }
    template <typename T>
    T read(const char * what) {
        need(sizeof(T), what);
        T v;
        std::memcpy(&v, p, sizeof(T));
        p += sizeof(T);
        return v;
    }
    std::string read_string(const char * what) {
        uint64_t n = read<uint64_t>(what);
        if (n > MAX_STRING_BYTES) corrupt(std::string("string length ") + std::to_string(n) + " too large in " + what);
        need(n, what);
        std::string s(reinterpret_cast<const char *>(p), n);
        p += n;
        return s;
    }
};

void read_value(Cursor & c, GgufType type, GgufValue & out, int depth, const std::string & key) {
    out.type = type;
    switch (type) {
        case GgufType::UINT8:
            out.i = c.read<uint8_t>("u8");
            out.f = (double) out.i;
            break;
        case GgufType::INT8:
            out.i = c.read<int8_t>("i8");
            out.f = (double) out.i;
            break;
        case GgufType::UINT16:
            out.i = c.read<uint16_t>("u16");
            out.f = (double) out.i;
            break;
        case GgufType::INT16:
            out.i = c.read<int16_t>("i16");
            out.f = (double) out.i;
            break;
        case GgufType::UINT32:
            out.i = c.read<uint32_t>("u32");
            out.f = (double) out.i;
            break;
        case GgufType::INT32:
            out.i = c.read<int32_t>("i32");
            out.f = (double) out.i;
            break;
        case GgufType::FLOAT32:
            out.f = c.read<float>("f32");
            out.i = 0;
            break;
        case GgufType::BOOL: {
            uint8_t b = c.read<uint8_t>("bool");
            if (b > 1) c.corrupt("bool value " + std::to_string(b) + " for key '" + key + "'");
            out.i = b;
            out.f = b;
            break;
        }
        case GgufType::STRING: out.str = c.read_string("string value"); break;
        case GgufType::UINT64: {
            uint64_t v = c.read<uint64_t>("u64");
            out.i =
                v > (uint64_t) std::numeric_limits<int64_t>::max() ? std::numeric_limits<int64_t>::max() : (int64_t) v;
            out.f = (double) v;
            break;
        }
        case GgufType::INT64:
            out.i = c.read<int64_t>("i64");
            out.f = (double) out.i;
            break;
        case GgufType::FLOAT64:
            out.f = c.read<double>("f64");
            out.i = 0;
            break;
        case GgufType::ARRAY: {
            if (depth >= MAX_NESTING) c.corrupt("arrays nested too deeply for key '" + key + "'");
            uint32_t et = c.read<uint32_t>("array type");
            if (et > (uint32_t) GgufType::FLOAT64)
                c.corrupt("unknown array element type " + std::to_string(et) + " for key '" + key + "'");
            uint64_t n = c.read<uint64_t>("array length");
            if (n > MAX_ARRAY_ITEMS)
                c.corrupt("array length " + std::to_string(n) + " too large for key '" + key + "'");
            // Each element takes at least one byte: reject counts the remaining bytes cannot hold before allocating.
            if (n > (uint64_t) (c.end - c.p))
                c.corrupt("array length " + std::to_string(n) + " exceeds the file for key '" + key + "'");
            out.array_type = (GgufType) et;
            out.items.resize(n);
            for (uint64_t k = 0; k < n; ++k) read_value(c, out.array_type, out.items[k], depth + 1, key);
            break;
        }
        default: c.corrupt("unknown metadata value type " + std::to_string((uint32_t) type) + " for key '" + key + "'");
    }
}

} // namespace

bool GgufValue::is_numeric() const { return type != GgufType::STRING && type != GgufType::ARRAY; }

GgufFile::GgufFile(const std::string & path) : path_(path) {
    fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) fail(ErrorCode::MODEL_NOT_FOUND, "cannot open model file '" + path + "': " + std::strerror(errno));
    struct stat st;
    if (fstat(fd_, &st) != 0 || !S_ISREG(st.st_mode)) {
        ::close(fd_);
        fd_ = -1;
        fail(ErrorCode::MODEL_NOT_FOUND, "model path '" + path + "' is not a regular file");
    }
    size_ = (size_t) st.st_size;
    mtime_ns_ = (int64_t) st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
    if (size_ < 24) {
        ::close(fd_);
        fd_ = -1;
        fail(ErrorCode::MODEL_CORRUPT,
             "GGUF file '" + path + "' is corrupt: only " + std::to_string(size_) + " bytes, too short for a header");
    }
    void * m = mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd_, 0);
    if (m == MAP_FAILED) {
        ::close(fd_);
        fd_ = -1;
        fail(ErrorCode::MODEL_NOT_FOUND, "cannot map model file '" + path + "': " + std::strerror(errno));
    }
    base_ = static_cast<const uint8_t *>(m);
    mapped_ = true;
    try {
        parse();
    } catch (...) {
        munmap(const_cast<uint8_t *>(base_), size_);
        ::close(fd_);
        base_ = nullptr;
        fd_ = -1;
        throw;
    }
}

GgufFile::GgufFile(const uint8_t * data, size_t size, const std::string & name)
    : path_(name), base_(data), size_(size) {
    if (size_ < 24)
        fail(ErrorCode::MODEL_CORRUPT,
             "GGUF file '" + path_ + "' is corrupt: only " + std::to_string(size_) + " bytes, too short for a header");
    parse();
}

void GgufFile::check_unchanged() const {
    if (!mapped_) return;
    struct stat st;
    if (fstat(fd_, &st) != 0)
        fail(ErrorCode::MODEL_NOT_FOUND, "cannot stat model file '" + path_ + "': " + std::strerror(errno));
    const int64_t mtime_ns = (int64_t) st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
    if ((size_t) st.st_size != size_ || mtime_ns != mtime_ns_)
        fail(ErrorCode::MODEL_CORRUPT, "model file '" + path_ + "' was modified in place since it was loaded (" +
                                           std::to_string(size_) + " bytes then, " +
                                           std::to_string((int64_t) st.st_size) +
                                           " now): its weights can no longer be read; replace a model " +
                                           "file by renaming the new one over it, and restart to serve a new model");
}

GgufFile::~GgufFile() {
    if (mapped_) munmap(const_cast<uint8_t *>(base_), size_);
    if (fd_ >= 0) ::close(fd_);
}

void GgufFile::parse() {
    Cursor c{base_, base_ + size_, path_};
    uint32_t magic = c.read<uint32_t>("magic");
    if (magic != GGUF_MAGIC) c.corrupt("bad magic (not a GGUF file)");
    version_ = c.read<uint32_t>("version");
    if (version_ != 2 && version_ != 3)
        c.corrupt("unsupported GGUF version " + std::to_string(version_) + " (expected 2 or 3)");
    uint64_t n_tensors = c.read<uint64_t>("tensor count");
    uint64_t n_kv = c.read<uint64_t>("metadata count");
    if (n_tensors > MAX_TENSORS) c.corrupt("tensor count " + std::to_string(n_tensors) + " is implausible");
    if (n_kv > MAX_KV) c.corrupt("metadata count " + std::to_string(n_kv) + " is implausible");

    for (uint64_t k = 0; k < n_kv; ++k) {
        std::string key = c.read_string("metadata key");
        uint32_t t = c.read<uint32_t>("metadata type");
        if (t > (uint32_t) GgufType::FLOAT64)
            c.corrupt("unknown metadata type " + std::to_string(t) + " for key '" + key + "'");
        GgufValue v;
        read_value(c, (GgufType) t, v, 0, key);
        if (kv_.count(key)) c.corrupt("duplicate metadata key '" + key + "'");
        kv_.emplace(std::move(key), std::move(v));
    }

    tensors_.resize(n_tensors);
    for (uint64_t k = 0; k < n_tensors; ++k) {
        GgufTensorInfo & t = tensors_[k];
        t.name = c.read_string("tensor name");
        t.n_dims = c.read<uint32_t>("tensor dims");
        if (t.n_dims < 1 || t.n_dims > 4)
            c.corrupt("tensor '" + t.name + "' has " + std::to_string(t.n_dims) + " dimensions");
        for (uint32_t d = 0; d < t.n_dims; ++d) {
            int64_t ne = c.read<int64_t>("tensor shape");
            if (ne <= 0 || ne > (int64_t) 1 << 32)
                c.corrupt("tensor '" + t.name + "' has dimension " + std::to_string(ne));
            t.ne[d] = ne;
        }
        t.type = c.read<uint32_t>("tensor type");
        t.offset = c.read<uint64_t>("tensor offset");
        if (tensor_index_.count(t.name)) c.corrupt("duplicate tensor '" + t.name + "'");
        tensor_index_[t.name] = k;
    }

    int64_t alignment = get_int("general.alignment", 32);
    if (alignment <= 0 || alignment > 1 << 20 || (alignment & (alignment - 1)) != 0)
        c.corrupt("general.alignment " + std::to_string(alignment) + " is not a power of two");
    uint64_t header_end = (uint64_t) (c.p - base_);
    uint64_t data_start = (header_end + alignment - 1) / alignment * alignment;
    if (!tensors_.empty() && data_start > size_) c.corrupt("truncated before the tensor data section");

    for (GgufTensorInfo & t : tensors_) {
        // Multiply with the bound checked at each step: dimensions of up to 2^32 overflow int64 (undefined behaviour;
        // native/fuzz/corpus/gguf/crash-shape-overflow.gguf under UBSan) before any check on the product could run.
        int64_t n = 1;
        for (int64_t ne : t.ne) {
            if (ne > ((int64_t) 1 << 36) / n) c.corrupt("tensor '" + t.name + "' is implausibly large");
            n *= ne;
        }
        // A type id nobody knows has no known size: reported when the tensor is used, with its name
        // (model_loader.cpp). Every known type's geometry is checked here, whether the engine can run it or not.
        const quant::TypeTraits * tt = quant::traits(t.type);
        if (!tt) continue;
        if (t.ne[0] % tt->block_elems != 0)
            c.corrupt("tensor '" + t.name + "' (" + tt->name + ") row of " + std::to_string(t.ne[0]) +
                      " elements is not a multiple of its block size " + std::to_string(tt->block_elems));
        t.n_bytes = (uint64_t) quant::row_bytes(tt->type, t.ne[0]) * (uint64_t) (n / t.ne[0]);
        if (t.offset % (uint64_t) alignment != 0) c.corrupt("tensor '" + t.name + "' offset is not aligned");
        if (t.offset > size_ - data_start || t.n_bytes > size_ - data_start - t.offset)
            c.corrupt("tensor '" + t.name + "' data lies beyond the end of the file (truncated?)");
        t.data = base_ + data_start + t.offset;
    }
}

const GgufValue * GgufFile::find(const std::string & key) const {
    auto it = kv_.find(key);
    return it == kv_.end() ? nullptr : &it->second;
}

static std::string type_error(const std::string & path, const std::string & key, const char * want) {
    return "GGUF file '" + path + "' is corrupt: metadata '" + key + "' should be " + want;
}

std::string GgufFile::get_string(const std::string & key, const std::string & def) const {
    const GgufValue * v = find(key);
    if (!v) return def;
    if (v->type != GgufType::STRING) fail(ErrorCode::MODEL_CORRUPT, type_error(path_, key, "a string"));
    return v->str;
}

int64_t GgufFile::get_int(const std::string & key, int64_t def) const {
    const GgufValue * v = find(key);
    if (!v) return def;
    if (!v->is_numeric() || v->type == GgufType::FLOAT32 || v->type == GgufType::FLOAT64)
        fail(ErrorCode::MODEL_CORRUPT, type_error(path_, key, "an integer"));
    return v->i;
}

double GgufFile::get_float(const std::string & key, double def) const {
    const GgufValue * v = find(key);
    if (!v) return def;
    if (!v->is_numeric()) fail(ErrorCode::MODEL_CORRUPT, type_error(path_, key, "a number"));
    return v->f;
}

bool GgufFile::get_bool(const std::string & key, bool def) const {
    const GgufValue * v = find(key);
    if (!v) return def;
    if (!v->is_numeric()) fail(ErrorCode::MODEL_CORRUPT, type_error(path_, key, "a bool"));
    return v->i != 0;
}

std::vector<std::string> GgufFile::get_string_array(const std::string & key) const {
    const GgufValue * v = find(key);
    std::vector<std::string> out;
    if (!v) return out;
    if (v->type != GgufType::ARRAY || v->array_type != GgufType::STRING)
        fail(ErrorCode::MODEL_CORRUPT, type_error(path_, key, "an array of strings"));
    out.reserve(v->items.size());
    for (const GgufValue & it : v->items) out.push_back(it.str);
    return out;
}

std::vector<double> GgufFile::get_float_array(const std::string & key) const {
    const GgufValue * v = find(key);
    std::vector<double> out;
    if (!v) return out;
    if (v->type != GgufType::ARRAY || v->array_type == GgufType::STRING || v->array_type == GgufType::ARRAY)
        fail(ErrorCode::MODEL_CORRUPT, type_error(path_, key, "an array of numbers"));
    out.reserve(v->items.size());
    for (const GgufValue & it : v->items) out.push_back(it.f);
    return out;
}

std::vector<int64_t> GgufFile::get_int_array(const std::string & key) const {
    const GgufValue * v = find(key);
    std::vector<int64_t> out;
    if (!v) return out;
    if (v->type != GgufType::ARRAY || v->array_type == GgufType::STRING || v->array_type == GgufType::ARRAY ||
        v->array_type == GgufType::FLOAT32 || v->array_type == GgufType::FLOAT64)
        fail(ErrorCode::MODEL_CORRUPT, type_error(path_, key, "an array of integers"));
    out.reserve(v->items.size());
    for (const GgufValue & it : v->items) out.push_back(it.i);
    return out;
}

const GgufTensorInfo * GgufFile::find_tensor(const std::string & name) const {
    auto it = tensor_index_.find(name);
    return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

} // namespace tl

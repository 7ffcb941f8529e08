#include "recur/train/safetensors.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <system_error>
#include <vector>

namespace recur {

// Tensor bytes are copied as they are; a big-endian port would have to swap them here.
static_assert(std::endian::native == std::endian::little, "safetensors I/O assumes a little-endian host");

namespace {

// Every parse error starts with the file name, so a user with many checkpoints knows which one.
#define ST_CHECK(cond, ...) RECUR_CHECK(cond, "safetensors file '{}': {}", name, fmt::format(__VA_ARGS__))
#define ST_FAIL(...) RECUR_FAIL("safetensors file '{}': {}", name, fmt::format(__VA_ARGS__))

using nlohmann::json;

std::string errno_text(int err) { return std::generic_category().message(err); }

// Names and values come from untrusted files: keep error messages short whatever they hold.
std::string clip(const std::string& s, size_t max = 80) { return s.size() <= max ? s : s.substr(0, max) + "..."; }

std::string short_dump(const json& j) { return clip(j.dump(-1, ' ', false, json::error_handler_t::replace)); }

uint64_t read_u64_le(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

/// One tensor entry of the header, validated against the data section.
struct Entry {
  std::string name;
  DType dtype = DType::F32;
  Shape shape;
  uint64_t begin = 0, end = 0;
};

struct Header {
  std::vector<Entry> entries;
  std::map<std::string, std::string> metadata;
};

// Checks the 8-byte length field against the file size; returns the header length.
uint64_t check_header_length(const uint8_t* first8, uint64_t file_size, const std::string& name) {
  ST_CHECK(file_size >= 8, "truncated: the file is {} bytes, shorter than the 8-byte header length", file_size);
  uint64_t n = read_u64_le(first8);
  ST_CHECK(n <= kMaxSafetensorsHeaderBytes, "header length {} is larger than the {} byte limit (corrupt file?)", n,
           kMaxSafetensorsHeaderBytes);
  ST_CHECK(n <= file_size - 8, "truncated: header length {} exceeds the {} bytes after the length field", n,
           file_size - 8);
  return n;
}

// A JSON value as a non-negative int64, or a clear error naming `what`.
int64_t non_negative_int(const json& j, const std::string& what, const std::string& name) {
  if (j.is_number_unsigned()) {
    uint64_t v = j.get<uint64_t>();
    ST_CHECK(v <= static_cast<uint64_t>(INT64_MAX), "{} is {}, which overflows int64", what, v);
    return static_cast<int64_t>(v);
  }
  ST_CHECK(j.is_number_integer(), "{} must be an integer, got {}", what, short_dump(j));
  int64_t v = j.get<int64_t>();
  ST_CHECK(v >= 0, "{} is {}, it must not be negative", what, v);
  return v;
}

Entry parse_entry(const std::string& key, const json& j, uint64_t data_size, const std::string& name) {
  Entry e;
  e.name = key;
  const std::string t = "tensor '" + clip(key) + "'";
  ST_CHECK(j.is_object(), "{}: the entry must be an object, got {}", t, short_dump(j));
  for (const char* field : {"dtype", "shape", "data_offsets"})
    ST_CHECK(j.contains(field), "{}: the entry has no '{}'", t, field);

  const json& dt = j["dtype"];
  ST_CHECK(dt.is_string(), "{}: 'dtype' must be a string, got {}", t, short_dump(dt));
  const std::string& dts = dt.get_ref<const std::string&>();
  ST_CHECK(dtype_from_name(dts, &e.dtype), "{}: unsupported dtype '{}' (recur reads F32, F64, I32 and I64)", t,
           clip(dts));

  const json& sh = j["shape"];
  ST_CHECK(sh.is_array(), "{}: 'shape' must be an array, got {}", t, short_dump(sh));
  // Multiplied left to right exactly as shape_numel does, so that no later product can overflow.
  int64_t numel = 1;
  for (size_t i = 0; i < sh.size(); ++i) {
    int64_t d = non_negative_int(sh[i], fmt::format("{}: shape[{}]", t, i), name);
    ST_CHECK(!__builtin_mul_overflow(numel, d, &numel), "{}: shape {} has too many elements (overflow)", t,
             short_dump(sh));
    e.shape.push_back(d);
  }

  const json& off = j["data_offsets"];
  ST_CHECK(off.is_array() && off.size() == 2, "{}: 'data_offsets' must be an array [begin, end], got {}", t,
           short_dump(off));
  e.begin = static_cast<uint64_t>(non_negative_int(off[0], t + ": data_offsets[0]", name));
  e.end = static_cast<uint64_t>(non_negative_int(off[1], t + ": data_offsets[1]", name));
  ST_CHECK(e.begin <= e.end, "{}: data_offsets [{}, {}] are reversed", t, e.begin, e.end);
  ST_CHECK(e.end <= data_size,
           "{}: data_offsets [{}, {}] are out of range: the data section has {} bytes (truncated file?)", t, e.begin,
           e.end, data_size);
  uint64_t nbytes = 0;
  bool overflow = __builtin_mul_overflow(static_cast<uint64_t>(numel), dtype_size(e.dtype), &nbytes);
  ST_CHECK(!overflow && nbytes == e.end - e.begin,
           "{}: data_offsets [{}, {}] span {} bytes, but shape {} of {} needs {} bytes", t, e.begin, e.end,
           e.end - e.begin, shape_str(e.shape), dts, overflow ? std::string("too many") : std::to_string(nbytes));
  return e;
}

Header parse_header(const char* text, size_t n, uint64_t data_size, const std::string& name) {
  json j;
  try {
    j = json::parse(text, text + n);
  } catch (const json::exception& ex) {
    ST_FAIL("malformed JSON header: {}", clip(ex.what(), 200));
  }
  ST_CHECK(j.is_object(), "the JSON header must be an object, got {}", short_dump(j));

  Header h;
  for (const auto& [key, value] : j.items()) {
    if (key == "__metadata__") {
      ST_CHECK(value.is_object(), "'__metadata__' must be an object, got {}", short_dump(value));
      for (const auto& [mk, mv] : value.items()) {
        ST_CHECK(mv.is_string(), "'__metadata__' value of '{}' must be a string, got {}", clip(mk), short_dump(mv));
        h.metadata[mk] = mv.get<std::string>();
      }
      continue;
    }
    h.entries.push_back(parse_entry(key, value, data_size, name));
  }

  // Tensors must not share bytes; gaps between them are allowed. Empty tensors occupy nothing.
  std::vector<const Entry*> by_offset;
  for (const Entry& e : h.entries)
    if (e.end > e.begin) by_offset.push_back(&e);
  std::sort(by_offset.begin(), by_offset.end(), [](const Entry* a, const Entry* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  for (size_t i = 1; i < by_offset.size(); ++i) {
    const Entry& a = *by_offset[i - 1];
    const Entry& b = *by_offset[i];
    ST_CHECK(b.begin >= a.end, "tensors '{}' [{}, {}] and '{}' [{}, {}] overlap", clip(a.name), a.begin, a.end,
             clip(b.name), b.begin, b.end);
  }
  return h;
}

// A file descriptor closed on scope exit.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  /// Closes now and reports the result (close can report a deferred write error).
  int close() {
    int rc = ::close(fd_);
    fd_ = -1;
    return rc;
  }

 private:
  int fd_;
};

// Reads exactly `n` bytes at `offset`; false (with errno set, or 0 for end of file) otherwise.
bool pread_all(int fd, void* dst, size_t n, uint64_t offset) {
  char* p = static_cast<char*>(dst);
  while (n > 0) {
    ssize_t r = ::pread(fd, p, n, static_cast<off_t>(offset));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      if (r == 0) errno = 0;
      return false;
    }
    p += r;
    n -= static_cast<size_t>(r);
    offset += static_cast<uint64_t>(r);
  }
  return true;
}

bool write_all(int fd, const void* src, size_t n) {
  const char* p = static_cast<const char*>(src);
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

// Builds the JSON header (padded with spaces to a multiple of 8) for `tensors` laid out in map order.
std::string build_header(const std::string& path, const std::map<std::string, Tensor>& tensors, const json& metadata) {
  json header = json::object();
  uint64_t offset = 0;
  for (const auto& [tname, t] : tensors) {
    RECUR_CHECK(tname != "__metadata__", "save_safetensors '{}': '__metadata__' is reserved, not a tensor name", path);
    RECUR_CHECK(t.defined(), "save_safetensors '{}': tensor '{}' is undefined", path, tname);
    RECUR_CHECK(t.device().is_cpu(), "save_safetensors '{}': tensor '{}' is on {} (internal: not copied to the host)",
                path, tname, t.device().str());
    header[tname] = {
        {"dtype", dtype_name(t.dtype())}, {"shape", t.shape()}, {"data_offsets", {offset, offset + t.nbytes()}}};
    offset += t.nbytes();
  }
  RECUR_CHECK(metadata.is_null() || metadata.is_object(),
              "save_safetensors '{}': metadata must be a JSON object, got {}", path, short_dump(metadata));
  if (metadata.is_object() && !metadata.empty()) {
    json meta = json::object();
    // safetensors readers (Python's included) accept only string values.
    for (const auto& [k, v] : metadata.items()) meta[k] = v.is_string() ? v.get<std::string>() : v.dump();
    header["__metadata__"] = std::move(meta);
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const json::exception& ex) {
    RECUR_FAIL("save_safetensors '{}': cannot encode the header (tensor names and metadata must be UTF-8): {}", path,
               ex.what());
  }
  text.append((8 - text.size() % 8) % 8, ' ');
  return text;
}

void fsync_directory(const std::string& path) {
  std::string dir = std::filesystem::path(path).parent_path().string();
  if (dir.empty()) dir = ".";
  Fd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  RECUR_CHECK(fd.get() >= 0, "save_safetensors '{}': cannot open directory '{}' to sync it: {}", path, dir,
              errno_text(errno));
  // Some file systems cannot sync directories; the rename itself has still happened.
  if (::fsync(fd.get()) != 0 && errno != EINVAL && errno != EROFS)
    RECUR_FAIL("save_safetensors '{}': cannot sync directory '{}': {}", path, dir, errno_text(errno));
}

}  // namespace

void save_safetensors(const std::string& path, const std::map<std::string, Tensor>& all_tensors,
                      const json& metadata) {
  // Tensors on a GPU are written from host copies (the file is the same whatever the device).
  std::map<std::string, Tensor> host_copies;
  const bool any_gpu = std::any_of(all_tensors.begin(), all_tensors.end(),
                                   [](const auto& kv) { return kv.second.defined() && !kv.second.device().is_cpu(); });
  if (any_gpu) {
    host_copies = all_tensors;
    for (auto& [tname, t] : host_copies)
      if (t.defined() && !t.device().is_cpu()) t = t.cpu();
  }
  const std::map<std::string, Tensor>& tensors = any_gpu ? host_copies : all_tensors;
  std::string header = build_header(path, tensors, metadata);
  std::string head(8, '\0');
  for (int i = 0; i < 8; ++i) head[static_cast<size_t>(i)] = static_cast<char>((header.size() >> (8 * i)) & 0xff);
  head += header;

  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  Fd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  RECUR_CHECK(fd.get() >= 0, "save_safetensors '{}': cannot create temporary file '{}': {}", path, tmp,
              errno_text(errno));
  auto fail = [&](const char* what) {
    int err = errno;
    fd.close();
    ::unlink(tmp.c_str());
    RECUR_FAIL("save_safetensors '{}': {} '{}' failed: {}", path, what, tmp, errno_text(err));
  };
  if (!write_all(fd.get(), head.data(), head.size())) fail("writing");
  for (const auto& [tname, t] : tensors)
    if (t.nbytes() && !write_all(fd.get(), t.raw(), t.nbytes())) fail("writing");
  if (::fsync(fd.get()) != 0) fail("syncing");
  if (fd.close() != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    RECUR_FAIL("save_safetensors '{}': closing '{}' failed: {}", path, tmp, errno_text(err));
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    RECUR_FAIL("save_safetensors '{}': cannot rename '{}' over it: {}", path, tmp, errno_text(err));
  }
  fsync_directory(path);
}

SafetensorsFile parse_safetensors(const uint8_t* data, size_t size, const std::string& name) {
  uint64_t n = check_header_length(data, size, name);
  uint64_t data_size = size - 8 - n;
  Header h = parse_header(reinterpret_cast<const char*>(data + 8), n, data_size, name);
  const uint8_t* section = data + 8 + n;
  SafetensorsFile out;
  out.metadata = std::move(h.metadata);
  for (Entry& e : h.entries) {
    Tensor t(e.shape, e.dtype);
    if (t.nbytes()) std::memcpy(t.raw(), section + e.begin, t.nbytes());
    out.tensors.emplace(std::move(e.name), std::move(t));
  }
  return out;
}

SafetensorsFile load_safetensors(const std::string& path) {
  const std::string& name = path;
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  ST_CHECK(fd.get() >= 0, "cannot open: {}", errno_text(errno));
  struct stat st {};
  ST_CHECK(::fstat(fd.get(), &st) == 0, "cannot stat: {}", errno_text(errno));
  ST_CHECK(S_ISREG(st.st_mode), "not a regular file");
  uint64_t size = static_cast<uint64_t>(st.st_size);

  uint8_t first8[8] = {};
  if (size >= 8)
    ST_CHECK(pread_all(fd.get(), first8, 8, 0), "cannot read: {}", errno ? errno_text(errno) : "end of file");
  uint64_t n = check_header_length(first8, size, name);
  std::string text(n, '\0');
  ST_CHECK(pread_all(fd.get(), text.data(), n, 8), "cannot read the header: {}",
           errno ? errno_text(errno) : "end of file");
  Header h = parse_header(text.data(), n, size - 8 - n, name);

  // Reading each tensor straight into its own storage avoids holding the whole file twice.
  SafetensorsFile out;
  out.metadata = std::move(h.metadata);
  for (Entry& e : h.entries) {
    Tensor t(e.shape, e.dtype);
    if (t.nbytes())
      ST_CHECK(pread_all(fd.get(), t.raw(), t.nbytes(), 8 + n + e.begin), "cannot read tensor '{}': {}", clip(e.name),
               errno ? errno_text(errno) : "end of file (file truncated while reading?)");
    out.tensors.emplace(std::move(e.name), std::move(t));
  }
  return out;
}

}  // namespace recur

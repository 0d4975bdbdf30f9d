// safetensors read/write. Layout: u64 little-endian N, N bytes of JSON header
// {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, "__metadata__": {..}},
// then the tensor bytes (offsets relative to the end of the header). Header padded with spaces
// to a multiple of 8 bytes as the reference implementation does.
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include "nn/module.h"
#include "tensor/ops/copy.h"

namespace okd::nn {

namespace {
const char* st_dtype(DType t) {
  switch (t) {
    case DType::Float32:
      return "F32";
    case DType::Float64:
      return "F64";
    case DType::Int64:
      return "I64";
    case DType::UInt8:
      return "U8";
  }
  return "?";
}

DType parse_st_dtype(const std::string& s, const std::string& path) {
  if (s == "F32") return DType::Float32;
  if (s == "F64") return DType::Float64;
  if (s == "I64") return DType::Int64;
  if (s == "U8" || s == "BOOL") return DType::UInt8;
  OKD_FAIL("load_safetensors(", path, "): unsupported dtype ", s, " (okd reads F32, F64, I64, U8)");
}

std::string json_escape(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '"' || c == '\\') o += '\\';
    o += c;
  }
  return o;
}

// A minimal JSON reader for the safetensors header: objects, arrays, strings, integers.
struct Json {
  enum Kind { Null, Num, Str, Arr, Obj } kind = Null;
  int64_t num = 0;
  std::string str;
  std::vector<Json> arr;
  std::vector<std::pair<std::string, Json>> obj;
  const Json* get(const std::string& k) const {
    for (const auto& [n, v] : obj)
      if (n == k) return &v;
    return nullptr;
  }
};

struct JsonParser {
  const std::string& s;
  const std::string& path;
  size_t i = 0;
  void ws() {
    while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
  }
  [[noreturn]] void fail(const char* what) {
    OKD_FAIL("load_safetensors(", path, "): malformed header JSON at byte ", i, ": ", what);
  }
  char peek() {
    ws();
    if (i >= s.size()) fail("unexpected end");
    return s[i];
  }
  void expect(char c) {
    if (peek() != c) fail("unexpected character");
    ++i;
  }
  std::string string() {
    expect('"');
    std::string o;
    while (i < s.size() && s[i] != '"') {
      if (s[i] == '\\' && i + 1 < s.size()) ++i;
      o += s[i++];
    }
    if (i >= s.size()) fail("unterminated string");
    ++i;
    return o;
  }
  Json value() {
    Json v;
    char c = peek();
    if (c == '{') {
      v.kind = Json::Obj;
      ++i;
      if (peek() == '}') {
        ++i;
        return v;
      }
      while (true) {
        std::string k = string();
        expect(':');
        v.obj.emplace_back(k, value());
        if (peek() == ',') {
          ++i;
          continue;
        }
        expect('}');
        return v;
      }
    }
    if (c == '[') {
      v.kind = Json::Arr;
      ++i;
      if (peek() == ']') {
        ++i;
        return v;
      }
      while (true) {
        v.arr.push_back(value());
        if (peek() == ',') {
          ++i;
          continue;
        }
        expect(']');
        return v;
      }
    }
    if (c == '"') {
      v.kind = Json::Str;
      v.str = string();
      return v;
    }
    if (c == '-' || std::isdigit(static_cast<unsigned char>(c))) {
      size_t end = i + 1;
      while (end < s.size() && (std::isdigit(static_cast<unsigned char>(s[end])) || s[end] == '.' ||
                                s[end] == 'e' || s[end] == 'E' || s[end] == '+' || s[end] == '-'))
        ++end;
      v.kind = Json::Num;
      v.num = std::stoll(s.substr(i, end - i));
      i = end;
      return v;
    }
    if (s.compare(i, 4, "null") == 0) {
      i += 4;
      return v;
    }
    fail("unexpected value");
  }
};
}  // namespace

void save_safetensors(const std::string& path, const NamedTensors& tensors,
                      const std::map<std::string, std::string>& metadata) {
  std::vector<Tensor> cpu;
  std::ostringstream h;
  h << "{";
  bool first = true;
  if (!metadata.empty()) {
    h << "\"__metadata__\":{";
    bool f = true;
    for (const auto& [k, v] : metadata) {
      h << (f ? "" : ",") << "\"" << json_escape(k) << "\":\"" << json_escape(v) << "\"";
      f = false;
    }
    h << "}";
    first = false;
  }
  size_t offset = 0;
  for (const auto& [name, t] : tensors) {
    Tensor c = ops::contiguous(ops::to(t, kCPU));
    cpu.push_back(c);
    h << (first ? "" : ",") << "\"" << json_escape(name) << "\":{\"dtype\":\""
      << st_dtype(c.dtype()) << "\",\"shape\":[";
    for (size_t i = 0; i < c.shape().size(); ++i) h << (i ? "," : "") << c.shape()[i];
    h << "],\"data_offsets\":[" << offset << "," << offset + c.nbytes() << "]}";
    offset += c.nbytes();
    first = false;
  }
  h << "}";
  std::string header = h.str();
  while (header.size() % 8 != 0) header += ' ';
  std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    OKD_CHECK(f.good(), "save_safetensors: cannot open ", tmp, " for writing");
    uint64_t n = header.size();
    unsigned char len[8];
    for (int i = 0; i < 8; ++i) len[i] = static_cast<unsigned char>(n >> (8 * i));
    f.write(reinterpret_cast<const char*>(len), 8);
    f.write(header.data(), static_cast<std::streamsize>(header.size()));
    for (const auto& c : cpu)
      f.write(static_cast<const char*>(c.raw_data()), static_cast<std::streamsize>(c.nbytes()));
    f.flush();
    OKD_CHECK(f.good(), "save_safetensors: write to ", tmp, " failed (disk full?)");
  }
  OKD_CHECK(std::rename(tmp.c_str(), path.c_str()) == 0, "save_safetensors: cannot rename ", tmp,
            " to ", path);
}

NamedTensors load_safetensors(const std::string& path,
                              std::map<std::string, std::string>* metadata) {
  std::ifstream f(path, std::ios::binary);
  OKD_CHECK(f.good(), "load_safetensors: cannot open ", path);
  f.seekg(0, std::ios::end);
  const uint64_t file_size = static_cast<uint64_t>(f.tellg());
  f.seekg(0);
  OKD_CHECK(file_size >= 8, "load_safetensors(", path, "): file is ", file_size,
            " bytes, too short");
  unsigned char len[8];
  f.read(reinterpret_cast<char*>(len), 8);
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= static_cast<uint64_t>(len[i]) << (8 * i);
  OKD_CHECK(n <= file_size - 8, "load_safetensors(", path, "): header length ", n,
            " exceeds the file size ", file_size);
  std::string header(n, '\0');
  f.read(header.data(), static_cast<std::streamsize>(n));
  JsonParser p{header, path};
  Json root = p.value();
  OKD_CHECK(root.kind == Json::Obj, "load_safetensors(", path, "): header is not a JSON object");
  const uint64_t data_start = 8 + n;
  NamedTensors out;
  for (const auto& [name, v] : root.obj) {
    if (name == "__metadata__") {
      if (metadata)
        for (const auto& [k, s] : v.obj) (*metadata)[k] = s.str;
      continue;
    }
    const Json* dt = v.get("dtype");
    const Json* sh = v.get("shape");
    const Json* off = v.get("data_offsets");
    OKD_CHECK(dt && sh && off && off->arr.size() == 2, "load_safetensors(", path, "): entry '",
              name, "' lacks dtype, shape or data_offsets");
    Shape shape;
    for (const auto& d : sh->arr) shape.push_back(d.num);
    Tensor t = empty(shape, parse_st_dtype(dt->str, path));
    uint64_t b = static_cast<uint64_t>(off->arr[0].num), e = static_cast<uint64_t>(off->arr[1].num);
    OKD_CHECK(e >= b && e - b == t.nbytes(), "load_safetensors(", path, "): entry '", name,
              "' has ", e - b, " bytes but shape ", shape_str(shape), " needs ", t.nbytes());
    OKD_CHECK(data_start + e <= file_size, "load_safetensors(", path, "): entry '", name,
              "' runs past the end of the file (truncated?)");
    f.seekg(static_cast<std::streamoff>(data_start + b));
    f.read(static_cast<char*>(t.raw_data()), static_cast<std::streamsize>(t.nbytes()));
    OKD_CHECK(f.good(), "load_safetensors(", path, "): read of '", name, "' failed");
    out.emplace_back(name, t);
  }
  return out;
}

}  // namespace okd::nn

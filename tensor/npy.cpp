// .npy reader and writer. Format: magic "\x93NUMPY", version (1.0: u16 header length; 2.0/3.0:
// u32), a Python-dict header {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), } padded
// with spaces to a multiple of 64 bytes and ending in '\n', then the raw data.
#include "tensor/npy.h"

#include <algorithm>
#include <cstring>
#include <fstream>
#include <sstream>

#include "tensor/ops/copy.h"
#include "tensor/ops/view.h"

namespace okd {

namespace {
std::string header_value(const std::string& header, const std::string& key,
                         const std::string& path) {
  size_t k = header.find("'" + key + "'");
  OKD_CHECK(k != std::string::npos, "load_npy(", path, "): header has no '", key, "' (", header,
            ")");
  size_t colon = header.find(':', k);
  OKD_CHECK(colon != std::string::npos, "load_npy(", path, "): malformed header ", header);
  return header.substr(colon + 1);
}
}  // namespace

Tensor load_npy(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  OKD_CHECK(f.good(), "load_npy: cannot open ", path);
  char magic[6];
  f.read(magic, 6);
  OKD_CHECK(f.good() && std::memcmp(magic, "\x93NUMPY", 6) == 0, "load_npy(", path,
            "): not a .npy file (bad magic)");
  unsigned char ver[2];
  f.read(reinterpret_cast<char*>(ver), 2);
  uint32_t hlen = 0;
  if (ver[0] == 1) {
    unsigned char b[2];
    f.read(reinterpret_cast<char*>(b), 2);
    hlen = b[0] | (b[1] << 8);
  } else if (ver[0] == 2 || ver[0] == 3) {
    unsigned char b[4];
    f.read(reinterpret_cast<char*>(b), 4);
    hlen = b[0] | (b[1] << 8) | (b[2] << 16) | (static_cast<uint32_t>(b[3]) << 24);
  } else {
    OKD_FAIL("load_npy(", path, "): unsupported format version ", int(ver[0]), ".", int(ver[1]));
  }
  std::string header(hlen, '\0');
  f.read(header.data(), hlen);
  OKD_CHECK(f.good(), "load_npy(", path, "): truncated header");

  std::string descr_v = header_value(header, "descr", path);
  size_t q1 = descr_v.find('\''), q2 = descr_v.find('\'', q1 + 1);
  std::string descr = descr_v.substr(q1 + 1, q2 - q1 - 1);
  DType dtype;
  if (descr == "<f4")
    dtype = DType::Float32;
  else if (descr == "<f8")
    dtype = DType::Float64;
  else if (descr == "<i8")
    dtype = DType::Int64;
  else if (descr == "|u1" || descr == "|b1")
    dtype = DType::UInt8;
  else
    OKD_FAIL("load_npy(", path, "): unsupported dtype '", descr,
             "' (okd reads <f4, <f8, <i8, |u1, |b1)");

  std::string fo = header_value(header, "fortran_order", path);
  bool fortran = fo.find("True") < fo.find(',');
  std::string sv = header_value(header, "shape", path);
  size_t p1 = sv.find('('), p2 = sv.find(')');
  OKD_CHECK(p1 != std::string::npos && p2 != std::string::npos, "load_npy(", path,
            "): malformed shape");
  Shape shape;
  std::stringstream ss(sv.substr(p1 + 1, p2 - p1 - 1));
  for (std::string item; std::getline(ss, item, ',');) {
    if (item.find_first_not_of(" ") == std::string::npos) continue;
    shape.push_back(std::stoll(item));
  }
  Shape storage_shape = shape;
  if (fortran) std::reverse(storage_shape.begin(), storage_shape.end());
  Tensor t = empty(storage_shape, dtype);
  f.read(static_cast<char*>(t.raw_data()), static_cast<std::streamsize>(t.nbytes()));
  OKD_CHECK(f.gcount() == static_cast<std::streamsize>(t.nbytes()), "load_npy(", path,
            "): truncated data (", f.gcount(), " of ", t.nbytes(), " bytes)");
  if (!fortran) return t;
  std::vector<int64_t> perm(shape.size());
  for (size_t i = 0; i < perm.size(); ++i) perm[i] = static_cast<int64_t>(perm.size() - 1 - i);
  return ops::contiguous(ops::permute(t, perm));
}

void save_npy(const std::string& path, const Tensor& t) {
  Tensor c = ops::contiguous(ops::to(t, kCPU));
  const char* descr = c.dtype() == DType::Float32   ? "<f4"
                      : c.dtype() == DType::Float64 ? "<f8"
                      : c.dtype() == DType::Int64   ? "<i8"
                                                    : "|u1";
  std::string shape = "(";
  for (size_t i = 0; i < c.shape().size(); ++i) shape += std::to_string(c.shape()[i]) + ", ";
  if (c.shape().size() > 1)
    shape.resize(shape.size() - 2);
  else if (c.shape().size() == 1)
    shape.resize(shape.size() - 1);
  shape += ")";
  std::string header =
      std::string("{'descr': '") + descr + "', 'fortran_order': False, 'shape': " + shape + ", }";
  size_t total = 10 + header.size() + 1;
  header += std::string((64 - total % 64) % 64, ' ') + "\n";
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  OKD_CHECK(f.good(), "save_npy: cannot open ", path, " for writing");
  f.write("\x93NUMPY\x01\x00", 8);
  unsigned char len[2] = {static_cast<unsigned char>(header.size() & 0xff),
                          static_cast<unsigned char>(header.size() >> 8)};
  f.write(reinterpret_cast<const char*>(len), 2);
  f.write(header.data(), static_cast<std::streamsize>(header.size()));
  f.write(static_cast<const char*>(c.raw_data()), static_cast<std::streamsize>(c.nbytes()));
  OKD_CHECK(f.good(), "save_npy: write to ", path, " failed");
}

}  // namespace okd

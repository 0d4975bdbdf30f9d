// okd::Error and the checking macros every layer uses: a failed check names the op, what it
// expected and what it got, so misuse is an exception a user can read, never a crash.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace okd {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

namespace detail {
inline void stream_all(std::ostringstream&) {}
template <class T, class... R>
void stream_all(std::ostringstream& os, const T& v, const R&... rest) {
  os << v;
  stream_all(os, rest...);
}
}  // namespace detail

// Builds a message from any streamable pieces: str("conv2d: got ", shape, " expected ", other).
template <class... A>
std::string str(const A&... pieces) {
  std::ostringstream os;
  detail::stream_all(os, pieces...);
  return os.str();
}

// "[2, 3, 4]"
std::string shape_str(const std::vector<int64_t>& shape);

}  // namespace okd

// OKD_CHECK(cond, pieces...): throws okd::Error(pieces...) when cond is false.
#define OKD_CHECK(cond, ...)                                  \
  do {                                                        \
    if (!(cond)) throw ::okd::Error(::okd::str(__VA_ARGS__)); \
  } while (0)

#define OKD_FAIL(...) throw ::okd::Error(::okd::str(__VA_ARGS__))

#pragma once
// cvg::Error is the one exception type the library throws for bad input. Messages name the op,
// the argument and the offending values, e.g.
//   "add: cannot broadcast a [2, 3] with b [4]"
// CVG_CHECK(cond, parts...) streams its parts into the message, so callers write
//   CVG_CHECK(a.dim() == 2, "matmul: a must be 2-D, got shape ", a.shape());
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace cvg {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& msg) : std::runtime_error(msg) {}
};

// Shapes print as [2, 3] in messages.
std::ostream& operator<<(std::ostream& os, const std::vector<int64_t>& v);

namespace detail {
inline void stream_all(std::ostream&) {}
template <typename T, typename... Rest>
void stream_all(std::ostream& os, const T& first, const Rest&... rest) {
  os << first;
  stream_all(os, rest...);
}
}  // namespace detail

template <typename... Parts>
std::string str_cat(const Parts&... parts) {
  std::ostringstream os;
  detail::stream_all(os, parts...);
  return os.str();
}

template <typename... Parts>
[[noreturn]] void fail(const Parts&... parts) {
  throw Error(str_cat(parts...));
}

}  // namespace cvg

#define CVG_CHECK(cond, ...)                  \
  do {                                        \
    if (!(cond)) ::cvg::fail(__VA_ARGS__);    \
  } while (0)

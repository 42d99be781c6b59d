#pragma once
// Small helpers shared by the test files.
#include <filesystem>
#include <functional>
#include <random>
#include <string>
#include <unistd.h>
#include <utility>

#include "core/error.h"
#include "core/parallel.h"

namespace cvg::testing {

// The message of the cvg::Error that fn throws, or "<no error thrown>" (which no message check
// matches, so the calling CHECK fails with the text visible).
inline std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "<no error thrown>";
}

// A fresh directory under the system temp dir, removed with everything in it on destruction.
struct TempDir {
  std::filesystem::path path;
  explicit TempDir(const std::string& prefix = "cvg_test") {
    std::random_device rd;
    path = std::filesystem::temp_directory_path() /
           (prefix + "_" + std::to_string(::getpid()) + "_" + std::to_string(rd()));
    std::filesystem::create_directories(path);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string file(const std::string& name) const { return (path / name).string(); }
};

#ifdef _OPENMP
// fn() run with 1 and then with 3 OpenMP threads (the setting is restored afterwards), for
// tests of the promise that CPU results do not depend on the thread count: CHECK(a == b).
template <typename Fn>
auto at_one_and_three_threads(const Fn& fn) {
  const int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  auto one = fn();
  omp_set_num_threads(3);
  auto three = fn();
  omp_set_num_threads(saved);
  return std::make_pair(std::move(one), std::move(three));
}
#endif

}  // namespace cvg::testing

#pragma once
// Small helpers shared by the test files.
#include <filesystem>
#include <functional>
#include <random>
#include <string>
#include <unistd.h>

#include "core/error.h"

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

}  // namespace cvg::testing

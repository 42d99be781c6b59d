// The choice of the CUDA convolution backend (kernels/conv.h), which every build compiles: the
// parsing of CVG_CONV / CVG_CONV_VERSION and its errors, and ConvBackendGuard. The backends
// themselves run in the [cuda] suite (tests/test_conv_backends_cuda.cpp).
#include <catch2/catch.hpp>

#include "kernels/conv.h"
#include "tests/support/test_utils.h"

using namespace cvg;
using namespace cvg::testing;
using Catch::Matchers::Contains;

TEST_CASE("conv backend: CVG_CONV and CVG_CONV_VERSION pick the handwritten versions",
          "[conv][conv_backend]") {
  // Both unset or empty: cuDNN with timed algorithms where the build has it, else the
  // handwritten default v2.
  const int by_default = conv_cudnn_built() ? kConvCudnnFind : 2;
  CHECK(parse_conv_backend(nullptr, nullptr) == by_default);
  CHECK(parse_conv_backend("", "") == by_default);
  CHECK(parse_conv_backend("", nullptr) == by_default);
  // Asking for the handwritten kernels, by name or by version, gets them in every build.
  CHECK(parse_conv_backend("cvgrad", nullptr) == 2);
  CHECK(parse_conv_backend("cvgrad", "") == 2);
  CHECK(parse_conv_backend(nullptr, "1") == 1);
  CHECK(parse_conv_backend("cvgrad", "2") == 2);
  CHECK(parse_conv_backend(nullptr, "3") == 3);
}

TEST_CASE("conv backend: bad values are errors listing the valid ones", "[conv][conv_backend]") {
  for (const char* conv : {"CUDNN", "cublas", "1", "cvgrad ", "cudnn-", "cudnn_find"}) {
    INFO("CVG_CONV='" << conv << "'");
    const std::string e = error_of([&] { parse_conv_backend(conv, nullptr); });
    CHECK_THAT(e, Contains("conv2d: CVG_CONV must be 'cvgrad'") && Contains(", 'cudnn'") &&
                      Contains("or 'cudnn-find'") &&
                      Contains(std::string("got '") + conv + "'"));
  }
  for (const char* version : {"0", "4", "-1", "2x", " 2", "abc", "99999999999999999999"}) {
    INFO("CVG_CONV_VERSION='" << version << "'");
    const std::string e = error_of([&] { parse_conv_backend(nullptr, version); });
    CHECK_THAT(e, Contains("conv2d: CVG_CONV_VERSION must be one of 1 (v1 direct), 2 (v2 "
                           "implicit GEMM") &&
                      Contains(std::string("got '") + version + "'"));
  }
}

TEST_CASE("conv backend: CVG_CONV=cudnn needs a build with cuDNN and no CVG_CONV_VERSION",
          "[conv][conv_backend]") {
  if (conv_cudnn_built()) {
    CHECK(parse_conv_backend("cudnn", nullptr) == kConvCudnn);
    CHECK(parse_conv_backend("cudnn", "") == kConvCudnn);
    CHECK(parse_conv_backend("cudnn-find", nullptr) == kConvCudnnFind);
    CHECK_THAT(error_of([] { parse_conv_backend("cudnn", "1"); }),
               Contains("CVG_CONV_VERSION='1' picks a handwritten kernel but CVG_CONV=cudnn;"));
    CHECK_THAT(error_of([] { parse_conv_backend("cudnn-find", "2"); }),
               Contains("CVG_CONV_VERSION='2' picks a handwritten kernel but CVG_CONV=cudnn-find"));
  } else {
    CHECK_THAT(error_of([] { parse_conv_backend("cudnn", nullptr); }),
               Contains("conv2d: CVG_CONV=cudnn but cvgrad was built without cuDNN"));
    CHECK_THAT(error_of([] { parse_conv_backend("cudnn-find", nullptr); }),
               Contains("conv2d: CVG_CONV=cudnn-find but cvgrad was built without cuDNN"));
  }
}

TEST_CASE("conv backend: ConvBackendGuard sets the backend for its scope and restores it",
          "[conv][conv_backend]") {
  const int before = conv_cuda_version();
  {
    const ConvBackendGuard outer(1);
    CHECK(conv_cuda_version() == 1);
    {
      const ConvBackendGuard inner(2);
      CHECK(conv_cuda_version() == 2);
    }
    CHECK(conv_cuda_version() == 1);
  }
  CHECK(conv_cuda_version() == before);

  for (int bad : {-1, kConvCudaVersions + 1, 17}) {
    INFO("backend " << bad);
    CHECK_THAT(error_of([&] { const ConvBackendGuard g(bad); }),
               Contains("conv2d: no CUDA backend " + std::to_string(bad) +
                        "; valid: 0 (cuDNN), 10 (cuDNN, timed search), 1 (v1 direct), 2 (v2 "
                        "implicit GEMM"));
    CHECK(conv_cuda_version() == before);
  }
  for (int cudnn : {kConvCudnn, kConvCudnnFind}) {
    if (conv_cudnn_built()) {
      const ConvBackendGuard g(cudnn);
      CHECK(conv_cuda_version() == cudnn);
    } else {
      CHECK_THAT(error_of([cudnn] { const ConvBackendGuard g(cudnn); }),
                 Contains("the cuDNN backend was selected but cvgrad was built without cuDNN"));
    }
  }
  CHECK(conv_cuda_version() == before);
}

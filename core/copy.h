#pragma once
// The one primitive that moves elements between tensors: copy `src` into the view `dst`,
// broadcasting src to dst's shape and converting dtypes. Crosses devices when dst and src live
// on different ones. No autograd (callers record nodes where needed).
#include "core/tensor.h"

namespace cvg {

void copy_into(const Tensor& dst, const Tensor& src, const char* op = "copy_");

#ifdef CVG_WITH_CUDA
// Same-device strided copy / fill on CUDA (core/copy_cuda.cu).
void copy_into_cuda(const Tensor& dst, const Tensor& src, const char* op);
void fill_cuda(const Tensor& dst, double value);
#endif

}  // namespace cvg

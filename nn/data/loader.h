#pragma once
// DataLoader: visits a Dataset in batches, epoch by epoch.
//
// Order. Without shuffle an epoch visits 0, 1, ..., n-1. With shuffle it visits a permutation
// drawn by Fisher-Yates from the Philox stream derive_key(derive_key(seed, epoch), 2^64 - 1), so
// the same (seed, epoch) always gives the same order and every epoch reshuffles.
// Transforms. Example i of epoch e gets SampleRng(seed, e, i) (nn/data/transforms.h): its
// augmentation depends only on (seed, epoch, index), not on the batch size, the prefetch
// setting or thread timing.
// Batches. Inputs (and targets, when the dataset has them) are stacked along a new dim 0 into
// CPU tensors; move them with .to(device). The last partial batch is kept unless drop_last.
// Prefetch. With prefetch = k > 0 a background thread prepares up to k batches ahead in a
// bounded queue. Batches arrive in the same order and with the same content as without it.
// An exception thrown while preparing a batch (in get() or a transform) is rethrown by next()
// at the position of that batch, after the batches before it. Destroying an Epoch (or leaving
// the loop early) stops the thread and waits for it.
//
//   DataLoader loader(dataset, {.batch_size = 64, .shuffle = true, .seed = 1, .prefetch = 2});
//   for (int64_t epoch = 0; epoch < epochs; ++epoch)
//     for (const Batch& b : loader.epoch(epoch)) train_step(b.input, b.target);
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "nn/data/dataset.h"
#include "nn/data/transforms.h"

namespace cvg::data {

struct LoaderOptions {
  int64_t batch_size = 1;
  bool shuffle = false;
  uint64_t seed = 0;
  bool drop_last = false;
  int prefetch = 0;            // batches prepared ahead by a background thread; 0: none
  ExampleTransform transform = {};  // applied to each example; empty: none
};

struct Batch {
  Tensor input;                  // [B, ...]
  Tensor target;                 // [B, ...], undefined when the dataset has no targets
  std::vector<int64_t> indices;  // dataset index of each row
};

class Epoch;

class DataLoader {
 public:
  DataLoader(std::shared_ptr<const Dataset> dataset, LoaderOptions options);

  int64_t num_batches() const;
  const LoaderOptions& options() const { return options_; }
  const Dataset& dataset() const { return *dataset_; }

  // The dataset indices of `epoch` in visiting order.
  std::vector<int64_t> order(int64_t epoch) const;
  // Batch b of an epoch whose order is given (what the epoch iterator and its thread call).
  Batch make_batch(const std::vector<int64_t>& order, int64_t epoch, int64_t b) const;
  // Iterates the batches of one epoch.
  Epoch epoch(int64_t epoch) const;

 private:
  std::shared_ptr<const Dataset> dataset_;
  LoaderOptions options_;
};

class Epoch {
 public:
  Epoch(DataLoader loader, int64_t epoch);
  ~Epoch();
  Epoch(Epoch&&) noexcept;
  Epoch& operator=(Epoch&&) noexcept;
  Epoch(const Epoch&) = delete;
  Epoch& operator=(const Epoch&) = delete;

  // The next batch, or nothing after the last one. Rethrows an error from preparing it.
  std::optional<Batch> next();

  // Input iteration for range-for.
  class iterator {
   public:
    explicit iterator(Epoch* e) : epoch_(e) { advance(); }
    iterator() = default;
    const Batch& operator*() const { return *current_; }
    const Batch* operator->() const { return &*current_; }
    iterator& operator++() { advance(); return *this; }
    bool operator!=(const iterator&) const { return current_.has_value(); }

   private:
    void advance() { current_ = epoch_->next(); }
    Epoch* epoch_ = nullptr;
    std::optional<Batch> current_;
  };
  iterator begin() { return iterator(this); }
  iterator end() { return iterator(); }

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace cvg::data

#include "nn/data/loader.h"

#include <condition_variable>
#include <deque>
#include <exception>
#include <limits>
#include <mutex>
#include <thread>

#include "core/rng.h"

namespace cvg::data {

DataLoader::DataLoader(std::shared_ptr<const Dataset> dataset, LoaderOptions options)
    : dataset_(std::move(dataset)), options_(std::move(options)) {
  CVG_CHECK(dataset_ != nullptr, "DataLoader: no dataset given");
  CVG_CHECK(options_.batch_size >= 1, "DataLoader: batch_size must be at least 1, got ",
            options_.batch_size);
  CVG_CHECK(options_.prefetch >= 0, "DataLoader: prefetch must be non-negative, got ", options_.prefetch);
}

int64_t DataLoader::num_batches() const {
  const int64_t n = dataset_->size(), bs = options_.batch_size;
  return options_.drop_last ? n / bs : (n + bs - 1) / bs;
}

std::vector<int64_t> DataLoader::order(int64_t epoch) const {
  CVG_CHECK(epoch >= 0, "DataLoader: epoch must be non-negative, got ", epoch);
  const int64_t n = dataset_->size();
  std::vector<int64_t> idx(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) idx[i] = i;
  if (!options_.shuffle) return idx;
  // Fisher-Yates; draw k (for position n-1-k) is a pure function of (seed, epoch, k). The stream
  // index 2^64 - 1 is never an example index, so it cannot collide with a SampleRng stream.
  const uint64_t key = derive_key(derive_key(options_.seed, static_cast<uint64_t>(epoch)),
                                  std::numeric_limits<uint64_t>::max());
  for (int64_t i = n - 1; i > 0; --i) {
    const int64_t j = philox_randint(key, static_cast<uint64_t>(n - 1 - i), 0, i + 1);
    std::swap(idx[i], idx[j]);
  }
  return idx;
}

Batch DataLoader::make_batch(const std::vector<int64_t>& order, int64_t epoch, int64_t b) const {
  const int64_t bs = options_.batch_size;
  const int64_t begin = b * bs;
  const int64_t end = std::min<int64_t>(begin + bs, static_cast<int64_t>(order.size()));
  CVG_CHECK(b >= 0 && begin < end, "DataLoader: batch ", b, " out of range for ", order.size(),
            " examples in batches of ", bs);
  Batch batch;
  std::vector<Tensor> inputs, targets;
  for (int64_t k = begin; k < end; ++k) {
    const int64_t i = order[k];
    Example ex;
    try {
      ex = dataset_->get(i);
      if (options_.transform) {
        SampleRng rng(options_.seed, static_cast<uint64_t>(epoch), static_cast<uint64_t>(i));
        ex = options_.transform(std::move(ex), rng);
      }
    } catch (const Error& e) {
      fail("DataLoader: example ", i, " (epoch ", epoch, ", batch ", b, "): ", e.what());
    }
    batch.indices.push_back(i);
    inputs.push_back(ex.input);
    targets.push_back(ex.target);
  }
  batch.input = stack_rows(inputs, "input");
  bool any = false, all = true;
  for (const Tensor& t : targets) {
    any = any || t.defined();
    all = all && t.defined();
  }
  CVG_CHECK(all || !any, "DataLoader: batch ", b, " of epoch ", epoch,
            " mixes examples with and without targets");
  if (all) batch.target = stack_rows(targets, "target");
  return batch;
}

Epoch DataLoader::epoch(int64_t e) const { return Epoch(*this, e); }

// ---- Epoch ----------------------------------------------------------------------------------------

struct Epoch::State {
  DataLoader loader;
  int64_t epoch;
  std::vector<int64_t> order;
  int64_t total;
  int64_t next = 0;     // next batch to hand out (without prefetch) or to produce (worker)
  bool over = false;    // after an error or the last batch

  // Prefetch: the worker pushes items; next() pops them in order.
  struct Item {
    Batch batch;
    std::exception_ptr error;
  };
  std::thread worker;
  std::mutex mu;
  std::condition_variable space, ready;
  std::deque<Item> queue;
  bool stop = false, done = false;

  State(DataLoader l, int64_t e)
      : loader(std::move(l)), epoch(e), order(loader.order(e)), total(loader.num_batches()) {}

  void run() {
    const size_t capacity = static_cast<size_t>(loader.options().prefetch);
    for (int64_t b = 0; b < total; ++b) {
      Item item;
      try {
        item.batch = loader.make_batch(order, epoch, b);
      } catch (...) {
        item.error = std::current_exception();
      }
      std::unique_lock<std::mutex> lock(mu);
      space.wait(lock, [&] { return stop || queue.size() < capacity; });
      if (stop) return;
      const bool failed = item.error != nullptr;
      queue.push_back(std::move(item));
      ready.notify_one();
      if (failed) break;
    }
    std::lock_guard<std::mutex> lock(mu);
    done = true;
    ready.notify_one();
  }
};

Epoch::Epoch(DataLoader loader, int64_t epoch)
    : state_(std::make_unique<State>(std::move(loader), epoch)) {
  if (state_->loader.options().prefetch > 0 && state_->total > 0)
    state_->worker = std::thread([s = state_.get()] { s->run(); });
}

Epoch::~Epoch() {
  if (state_ && state_->worker.joinable()) {
    {
      std::lock_guard<std::mutex> lock(state_->mu);
      state_->stop = true;
    }
    state_->space.notify_all();
    state_->worker.join();
  }
}

Epoch::Epoch(Epoch&&) noexcept = default;
Epoch& Epoch::operator=(Epoch&& other) noexcept {
  if (this != &other) {
    Epoch dying(std::move(*this));  // stops our worker, if any
    state_ = std::move(other.state_);
  }
  return *this;
}

std::optional<Batch> Epoch::next() {
  State& s = *state_;
  if (s.over) return std::nullopt;
  if (!s.worker.joinable()) {
    if (s.next >= s.total) {
      s.over = true;
      return std::nullopt;
    }
    try {
      return s.loader.make_batch(s.order, s.epoch, s.next++);
    } catch (...) {
      s.over = true;
      throw;
    }
  }
  State::Item item;
  {
    std::unique_lock<std::mutex> lock(s.mu);
    s.ready.wait(lock, [&] { return !s.queue.empty() || s.done; });
    if (s.queue.empty()) {
      s.over = true;
      return std::nullopt;
    }
    item = std::move(s.queue.front());
    s.queue.pop_front();
  }
  s.space.notify_one();
  if (item.error) {
    s.over = true;
    std::rethrow_exception(item.error);
  }
  return std::move(item.batch);
}

}  // namespace cvg::data

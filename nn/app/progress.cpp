#include "nn/app/progress.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>

namespace cvg::app {

namespace {

double steady_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

std::string printf_string(const char* fmt, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, fmt, v);
  return buf;
}

}  // namespace

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "--";
  const int64_t s = static_cast<int64_t>(std::llround(seconds));
  char buf[48];
  if (s >= 3600)
    std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", static_cast<long long>(s / 3600),
                  static_cast<long long>(s / 60 % 60), static_cast<long long>(s % 60));
  else
    std::snprintf(buf, sizeof buf, "%lld:%02lld", static_cast<long long>(s / 60),
                  static_cast<long long>(s % 60));
  return buf;
}

Progress::Progress(std::ostream& os, bool terminal, ProgressOptions options, Clock clock)
    : os_(os), terminal_(terminal), o_(options), clock_(clock ? std::move(clock) : steady_seconds) {
  if (o_.every <= 0) {
    const int64_t span = o_.total - o_.first_step;
    o_.every = span > 0 ? std::max<int64_t>(1, span / 10) : 100;
  }
}

Progress Progress::on_stdout(ProgressOptions options) {
  return Progress(std::cout, ::isatty(STDOUT_FILENO) == 1, options);
}
Progress Progress::on_stderr(ProgressOptions options) {
  return Progress(std::cerr, ::isatty(STDERR_FILENO) == 1, options);
}

std::string Progress::status(int64_t step, double loss) const {
  // Appends rather than operator+ chains: GCC 12 warns falsely (-Wrestrict) on those.
  std::string s = "step ";
  s.append(std::to_string(step));
  if (o_.total > 0) s.append("/").append(std::to_string(o_.total));
  s.append("  loss ").append(printf_string("%.4g", loss));
  // Rate over the steps this process has done since its first report; unknown until then.
  const double elapsed = clock_() - t0_;
  const int64_t done = step - base_step_;
  const double rate = started_ && elapsed > 0 && done > 0 ? double(done) / elapsed : NAN;
  const double shown = rate * (o_.items_per_step > 0 ? double(o_.items_per_step) : 1.0);
  s.append("  ");
  s.append(std::isfinite(shown) ? printf_string(shown >= 100 ? "%.0f" : "%.2f", shown) : "--");
  s.append(o_.items_per_step > 0 ? " items/s" : " steps/s");
  if (o_.total > 0)
    s.append("  eta ").append(format_duration(std::isfinite(rate) ? double(o_.total - step) / rate : NAN));
  return s;
}

void Progress::draw(int64_t step, double loss) {
  std::string line = status(step, loss);
  if (terminal_) {
    if (o_.total > 0) {
      const double frac = std::clamp(double(step) / double(o_.total), 0.0, 1.0);
      const int full = static_cast<int>(frac * o_.bar_width);
      std::string bar(static_cast<size_t>(o_.bar_width) + 3, '.');
      bar.front() = '[';
      std::fill_n(bar.begin() + 1, full, '#');
      bar.replace(bar.size() - 2, 2, "] ");
      line.insert(0, bar);
    }
    // \r returns to the line start, ESC[K clears what a longer previous line left.
    os_ << '\r' << line << "\x1b[K" << std::flush;
  } else {
    os_ << line << '\n' << std::flush;
  }
  drawn_ = true;
  last_printed_ = step;
}

void Progress::update(int64_t step, double loss) {
  const double now = clock_();
  if (!started_) {
    // Time starts at the first report: the rate is measured over steps after it, so the
    // first step (often slower: allocation, warm-up) counts as done at t0.
    started_ = true;
    t0_ = now;
    base_step_ = step;
  }
  last_step_ = step;
  last_loss_ = loss;
  if (terminal_) {
    if (now - last_draw_ >= o_.redraw_s || step == o_.total) {
      last_draw_ = now;
      draw(step, loss);
    }
  } else if (step == o_.first_step + 1 || step % o_.every == 0 || step == o_.total) {
    draw(step, loss);
  }
}

void Progress::print(const std::string& line) {
  if (terminal_ && drawn_) {
    os_ << "\r\x1b[K" << line << '\n';
    draw(last_step_, last_loss_);
  } else {
    os_ << line << '\n' << std::flush;
  }
}

void Progress::finish() {
  if (!started_) return;
  if (terminal_) {
    draw(last_step_, last_loss_);
    os_ << '\n' << std::flush;
  } else if (last_printed_ != last_step_) {
    draw(last_step_, last_loss_);
  }
}

}  // namespace cvg::app

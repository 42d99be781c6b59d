#pragma once
// Training progress: step, loss, throughput and ETA.
//   on a terminal : one line redrawn in place (carriage return), at most every redraw_s seconds
//                   [##########..........] step 120/400  loss 0.4321  1234 steps/s  eta 0:12
//   otherwise     : plain lines (log files, CI, pipes), every `every` steps plus the first and
//                   the last:  step 120/400  loss 0.4321  1234 steps/s  eta 0:12
// Throughput and ETA count from the first update of this process (a resumed run starts at
// first_step), so time spent before a restart is not mixed in.
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <string>

namespace cvg::app {

struct ProgressOptions {
  int64_t total = 0;           // the last step of the run; 0 when unknown (no bar, no ETA)
  int64_t first_step = 0;      // steps already done before this process (a resumed run)
  int64_t items_per_step = 0;  // e.g. the batch size: throughput in items/s; 0: steps/s
  int64_t every = 0;           // plain lines every `every` steps; 0: about 10 lines in the run
  double redraw_s = 0.1;       // terminal: seconds between redraws
  int bar_width = 20;
};

class Progress {
 public:
  using Clock = std::function<double()>;  // seconds, monotonic

  // Writes to `os`; `terminal` picks the redrawn bar. `clock` defaults to std::steady_clock.
  Progress(std::ostream& os, bool terminal, ProgressOptions options, Clock clock = {});
  // On stdout, a bar when stdout is a terminal (isatty).
  static Progress on_stdout(ProgressOptions options);
  // On stderr, a bar when stderr is a terminal.
  static Progress on_stderr(ProgressOptions options);

  // Reports that `step` is done with this loss.
  void update(int64_t step, double loss);
  // Prints a line of text without garbling the bar (redrawn below it).
  void print(const std::string& line);
  // Ends the bar's line; in plain mode prints the last step if it was not printed yet.
  void finish();

  // The fields of one report: "step 120/400  loss 0.4321  1234 steps/s  eta 0:12".
  std::string status(int64_t step, double loss) const;

 private:
  void draw(int64_t step, double loss);
  std::ostream& os_;
  bool terminal_;
  ProgressOptions o_;
  Clock clock_;
  double t0_ = 0, last_draw_ = -1e300;
  bool started_ = false, drawn_ = false;
  int64_t base_step_ = 0, last_step_ = 0, last_printed_ = -1;
  double last_loss_ = 0;
};

// "0:07", "12:34", "1:02:03".
std::string format_duration(double seconds);

}  // namespace cvg::app

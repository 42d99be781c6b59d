#pragma once
// The seed study of the dann app: runs of the three modes over several seeds summarised as the
// table of the pass criteria (Ganin's thesis, Table 5.I; project notes section 3.5):
//   per mode  source and target test accuracy (and proxy A-distance), mean +/- sd over the
//             seeds (sample standard deviation, n - 1; 0 for a single seed);
//   gates     on the means: gain = DANN target - source-only target >= 0.10;
//             gap closed = gain / (train-on-target target - source-only target) >= 0.30;
//             source drop = source-only source - DANN source < 0.02.
// `cvg-dann table` reads the runs' eval.json and config.json and prints this as Markdown.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace cvg::dann {

struct RunResult {
  std::string run;   // the run folder, for the listing
  std::string mode;  // "dann", "source-only", "target-only"
  int64_t seed = 0;
  int64_t steps = 0;
  double source_accuracy = 0, target_accuracy = 0;
  std::optional<double> proxy_a_distance;
  // The thesis's protocol (models/dann/svm.h): accuracies with the last layer retrained as a
  // linear SVM, when the run's eval.json has them.
  std::optional<double> svm_source_accuracy, svm_target_accuracy;
};

// The runs with their linear-SVM accuracies in place of the label predictor's, for the same
// summary; nullopt when some run lacks them (an eval.json written without --svm).
std::optional<std::vector<RunResult>> with_svm_accuracies(const std::vector<RunResult>& runs);

struct MeanSd {
  double mean = 0, sd = 0;
  int64_t n = 0;
};
// Mean and sample standard deviation (n - 1 in the denominator; 0 when n == 1). Empty: n = 0.
MeanSd mean_sd(const std::vector<double>& v);

struct ModeSummary {
  std::string mode;
  std::vector<int64_t> seeds;  // sorted
  MeanSd source, target, proxy_a;  // proxy_a.n counts the runs that measured it
};

struct StudySummary {
  std::vector<ModeSummary> modes;  // in the order dann, source-only, target-only (those present)
  bool complete = false;           // all three modes present, so the gates below are defined
  double gain = 0, gap_closed = 0, source_drop = 0;
  bool pass_gain = false, pass_gap = false, pass_source = false;
  bool pass() const { return complete && pass_gain && pass_gap && pass_source; }
};

// Groups runs by mode and evaluates the gates. Errors (naming the runs) on an unknown mode, two
// runs of one mode with the same seed, or runs of one study that disagree on the step count.
StudySummary summarize_study(const std::vector<RunResult>& runs);

// The summary as Markdown: the table (one row per mode), then one line per gate with its
// threshold and PASS / FAIL.
std::string study_markdown(const StudySummary& s);

}  // namespace cvg::dann

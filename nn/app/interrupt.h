#pragma once
// Ctrl-C without losing work. While an InterruptGuard lives (run_main holds one around the body
// of a command marked stops_on_interrupt(), nn/app/cli.h), SIGINT and SIGTERM only set a flag;
// the training loop polls interrupted() once per step
// and, when it is set, writes a checkpoint and returns kInterruptedExitCode:
//
//   for (int64_t step = start + 1; step <= steps; ++step) {
//     ... one training step ...
//     if (step % checkpoint_every == 0 || step == steps || app::interrupted()) {
//       nn::save_checkpoint(run.checkpoint_path(), *model, &opt, step, meta);
//       if (app::interrupted()) {
//         std::cerr << "interrupted: checkpoint of step " << step << " written\n";
//         return app::kInterruptedExitCode;   // resume with --resume <run>/checkpoint.safetensors
//       }
//     }
//   }
//
// The step in flight finishes first, so the checkpoint is consistent. A second Ctrl-C while the
// first is pending restores the default action and re-raises the signal: the process ends at
// once (a hung app can still be killed). Checkpoints are written atomically, so even that
// leaves the previous checkpoint intact.
namespace cvg::app {

// 128 + SIGINT, what a shell reports for a process stopped by Ctrl-C.
inline constexpr int kInterruptedExitCode = 130;

class InterruptGuard {
 public:
  // Installs the handlers and clears the flag; the destructor restores the previous handlers.
  InterruptGuard();
  ~InterruptGuard();
  InterruptGuard(const InterruptGuard&) = delete;
  InterruptGuard& operator=(const InterruptGuard&) = delete;
};

// True once SIGINT or SIGTERM arrived while a guard was installed.
bool interrupted();
// Forgets a pending interrupt (an app that handled it and goes on, or a test).
void clear_interrupt();

}  // namespace cvg::app

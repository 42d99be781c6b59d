#include "nn/app/interrupt.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>

#include "core/error.h"

namespace cvg::app {

namespace {

// Lock-free, so reading and writing it from a signal handler is well defined.
std::atomic<bool> g_interrupted{false};
static_assert(std::atomic<bool>::is_always_lock_free);

struct sigaction g_previous_int, g_previous_term;
int g_depth = 0;  // nested guards (a test inside run_main) keep the outermost's saved handlers

extern "C" void on_signal(int sig) {
  if (g_interrupted.exchange(true)) {
    // Second signal: give up on the clean stop. signal() and raise() are async-signal-safe.
    ::signal(sig, SIG_DFL);
    ::raise(sig);
    return;
  }
  static const char msg[] =
      "\ninterrupt: stopping after the current step (press Ctrl-C again to abort now)\n";
  // write() is async-signal-safe; its result cannot be acted on here.
  [[maybe_unused]] const ssize_t n = ::write(STDERR_FILENO, msg, sizeof msg - 1);
}

}  // namespace

InterruptGuard::InterruptGuard() {
  g_interrupted = false;
  if (g_depth > 0) {
    ++g_depth;
    return;
  }
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  // SA_RESTART: a blocking read in the data loader carries on instead of failing with EINTR.
  sa.sa_flags = SA_RESTART;
  CVG_CHECK(::sigaction(SIGINT, &sa, &g_previous_int) == 0 &&
                ::sigaction(SIGTERM, &sa, &g_previous_term) == 0,
            "InterruptGuard: cannot install the SIGINT/SIGTERM handlers");
  g_depth = 1;
}

InterruptGuard::~InterruptGuard() {
  if (--g_depth > 0) return;
  ::sigaction(SIGINT, &g_previous_int, nullptr);
  ::sigaction(SIGTERM, &g_previous_term, nullptr);
}

bool interrupted() { return g_interrupted.load(); }
void clear_interrupt() { g_interrupted = false; }

}  // namespace cvg::app

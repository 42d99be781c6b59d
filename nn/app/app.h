#pragma once
// Everything an app's main.cpp needs from the shared conventions, in one include:
//   nn/app/cli.h        subcommands, flags, --config, --help, run_main (exit codes)
//   nn/app/run_dir.h    the run folder: config.json, metrics.jsonl, loss.svg, checkpoint path
//   nn/app/progress.h   progress bar on a terminal, plain lines otherwise
//   nn/app/interrupt.h  Ctrl-C: a flag the training loop polls, then checkpoint and exit
//   nn/app/resume.h     --resume's check of the checkpoint against the flags
// apps/demo/main.cpp is the smallest complete example.
#include "nn/app/cli.h"
#include "nn/app/interrupt.h"
#include "nn/app/progress.h"
#include "nn/app/resume.h"
#include "nn/app/run_dir.h"

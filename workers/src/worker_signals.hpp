// What every signal means to a worker process, in every model and both
// start modes. A worker never dies of a signal's default action unless the
// signal reports a fault of its own, or is meant to kill it:
//
//   TERM          graceful stop: stop accepting, finish what is in flight
//                 (within --graceful-timeout), exit 0
//   INT, QUIT     fast stop: stop accepting, close every connection without
//                 waiting for what is in flight, exit 0. A thread model
//                 whose threads may still be in the handler (a pool, or
//                 thread-per-connection with connections open) exits
//                 without joining them and without handler.finish(); a
//                 one-thread worker ends a connection that waits for input
//                 at once, but a handler call under way (or a blocking
//                 write to a client that does not read) finishes first
//   USR1          reopen the log files (reopen_log(), from the loop; a
//                 worker asleep in accept() itself that takes it just
//                 before it gets there reopens when it next wakes, before
//                 it serves: there is no atomic "unblock and accept")
//   HUP, USR2, WINCH, ALRM, URG, VTALRM, PROF, IO, PWR, XCPU, XFSZ, STKFLT,
//   PIPE, the realtime signals SIGRTMIN..SIGRTMAX: ignored (the master is
//                 the one that reloads, upgrades and resizes the pool)
//   TSTP, TTIN, TTOU: ignored; job control is the master's business (a
//                 worker in its own process group is never the terminal's
//                 foreground: it must not stop on a read or write there)
//   SEGV, BUS, FPE, ILL, TRAP, SYS, ABRT: left as they are (the default, or a
//                 sanitizer's handler): a fault must still crash and dump,
//                 and ABRT is how the master ends a worker that stopped
//                 beating its heartbeat
//   CHLD, CONT:   left at their defaults (nothing happens); KILL and STOP
//                 cannot be caught
//
// The runtimes install the handlers of TERM, INT, QUIT and USR1 (the event
// loop's SignalPipe, the blocking models' StopSignal); this sets the rest.
//
// A fork-per-connection child (one connection, PR_SET_PDEATHSIG SIGKILL,
// in its worker's process group, so a signal to the group reaches it too):
// TERM ends its connection gracefully, INT and QUIT at once, each for that
// connection only; its worker's stop reaches it as well (a graceful one
// through the worker's eventfd; when the worker exits, the death signal);
// USR1 and the rest are ignored.
//
// Ignored dispositions survive exec(): a handler that starts programs
// should reset them for the child (posix_spawnattr_setsigdefault).
#pragma once

namespace prefork {

// Sets SIG_IGN on the signals without a meaning to a worker (the table
// above); logs a failing sigaction and goes on.
void ignore_signals_without_meaning() noexcept;

}  // namespace prefork

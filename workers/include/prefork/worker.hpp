// The worker side, for programs that a spawn-mode master starts: the same
// program re-run in its worker role (prefork_main does this for you), or a
// separate worker program such as prefork-worker.
#pragma once

#include <prefork/exit_status.hpp>
#include <prefork/handler.hpp>

namespace prefork {

// True in a process started by a spawn-mode master (the worker role).
bool started_as_worker();

// For a spawned worker: serves the inherited listeners with `handler` until
// told to stop; returns the worker's exit status.
int serve_as_worker(Handler& handler);

}  // namespace prefork

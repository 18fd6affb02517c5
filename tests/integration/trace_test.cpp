// --trace, read as a student reads it: a real upper_server with two
// workers, one of them killed with SIGKILL, then the master stopped with
// SIGTERM; its log must tell the whole sequence (fork or spawn, set-up,
// ready, exit with the signal, reap, restart, stop, reaps) in order within
// each process, each process's times never going back.
#define BOOST_TEST_MODULE integration_trace
#include <boost/test/unit_test.hpp>

#include <signal.h>

#include <map>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "fixture.hpp"
#include "pattern.hpp"

using namespace prefork::test;

namespace {

struct Event {
  pid_t pid = 0;
  std::string role;       // "master", "worker 0 gen 1"
  long long time_us = 0;  // since the master's start
  std::string text;       // "fork: slot 0 gen 1 -> pid 4242"
};

// The trace lines of a log, in the order written.
std::vector<Event> trace_events(const std::string& log) {
  static const Pattern line(
      R"(\S+ info prefork\[(\d+)\] (master|worker \d+ gen \d+): trace \+(\d+)\.(\d{3})ms (.*))");
  std::vector<Event> events;
  std::istringstream in(log);
  for (std::string text; std::getline(in, text);) {
    if (!line.matches(text)) continue;
    auto part = [&](std::size_t group) { return line.all(text, group).at(0); };
    events.push_back({static_cast<pid_t>(std::stol(part(1))), part(2),
                      std::stoll(part(3)) * 1000 + std::stoll(part(4)), part(5)});
  }
  return events;
}

// The lines of one process, in order.
std::vector<std::string> lines_of(const std::vector<Event>& events, pid_t pid) {
  std::vector<std::string> lines;
  for (const Event& event : events)
    if (event.pid == pid) lines.push_back(event.text);
  return lines;
}

// Where the first line at or after `from` starting with `prefix` is; the
// size of `lines` when none is.
std::size_t find(const std::vector<std::string>& lines, std::string_view prefix,
                 std::size_t from = 0) {
  for (std::size_t i = from; i < lines.size(); ++i)
    if (lines[i].starts_with(prefix)) return i;
  return lines.size();
}

std::string joined(const std::vector<std::string>& lines) {
  std::string text;
  for (const std::string& line : lines) text.append(line).append("\n");
  return text;
}

// "fork: slot 0 gen 1 -> pid 4242" or "spawn: ... -> pid 4242 (exec PATH)":
// how the master says it started that worker, up to its pid.
std::string started(unsigned slot, unsigned generation, pid_t pid) {
  std::string text = spawn_mode() ? "spawn: slot " : "fork: slot ";
  text += std::to_string(slot) + " gen " + std::to_string(generation) + " -> pid " +
          std::to_string(pid);
  if (spawn_mode()) text += " (exec ";
  return text;
}

std::string slot_pid(unsigned slot, pid_t pid) {
  return "slot " + std::to_string(slot) + " pid " + std::to_string(pid);
}

}  // namespace

BOOST_AUTO_TEST_CASE(the_trace_tells_a_kill_a_restart_and_a_stop_in_order) {
  UpperServer server({"--framed", "127.0.0.1:0", "--trace"});
  const prefork::ScoreboardSnapshot ready = server.ready_snapshot();
  BOOST_TEST_REQUIRE(ready.slots.size() >= 2u);
  const pid_t victim = ready.slots.at(0).pid;
  const pid_t other = ready.slots.at(1).pid;
  // The master says so once it has seen both ready: the kill comes after.
  BOOST_TEST_REQUIRE(wait_until(
      [&] {
        const auto master = lines_of(trace_events(server.process().stderr_text()), server.pid());
        return find(master, "ready: " + slot_pid(0, victim) + " ") < master.size() &&
               find(master, "ready: " + slot_pid(1, other) + " ") < master.size();
      },
      state_timeout));

  BOOST_TEST_REQUIRE(::kill(victim, SIGKILL) == 0);
  auto replaced = server.when([&](const prefork::ScoreboardSnapshot& s) {
    const auto& slot = s.slots.at(0);
    return slot.pid > 0 && slot.pid != victim && slot.state == prefork::WorkerState::ready;
  });
  BOOST_TEST_REQUIRE(replaced.has_value(), "slot 0 not refilled in time");
  const pid_t replacement = replaced->slots.at(0).pid;
  BOOST_TEST_REQUIRE(wait_until(
      [&] {
        const auto master = lines_of(trace_events(server.process().stderr_text()), server.pid());
        return find(master, "ready: " + slot_pid(0, replacement) + " ") < master.size();
      },
      state_timeout));

  server.process().signal(SIGTERM);
  BOOST_TEST_REQUIRE(status_or_running(server.process().wait_exit(tsan_stop_timeout)) == 0);
  const std::vector<Event> events = trace_events(server.process().stderr_text());

  // Times never go back within a process (one clock for all of them).
  std::map<pid_t, long long> last;
  for (const Event& event : events) {
    BOOST_TEST(event.time_us >= last[event.pid], event.role << ": " << event.text);
    last[event.pid] = event.time_us;
  }

  // The master: each worker started, then seen ready; the victim's exit
  // with its signal, its reaping, the decision, the replacement; the stop.
  const std::vector<std::string> master = lines_of(events, server.pid());
  BOOST_TEST_CONTEXT("the master's trace:\n" << joined(master)) {
    BOOST_TEST(find(master, "start: master pid " + std::to_string(server.pid())) == 0u);
    BOOST_TEST(find(master, "listening: framed 127.0.0.1:") < master.size());
    for (auto [slot, pid] : {std::pair{0u, victim}, {1u, other}}) {
      const std::size_t forked = find(master, started(slot, 1, pid));
      BOOST_TEST(forked < master.size(), "slot " << slot << " never started");
      BOOST_TEST(find(master, "ready: " + slot_pid(slot, pid) + " (seen ", forked) < master.size());
    }
    const std::size_t victim_ready = find(master, "ready: " + slot_pid(0, victim) + " ");
    const std::size_t exited = find(
        master, "exit: " + slot_pid(0, victim) + " killed by signal 9 (SIGKILL)", victim_ready);
    BOOST_TEST_REQUIRE(exited < master.size());
    const std::size_t reaped = find(master, "reaped: " + slot_pid(0, victim), exited);
    const std::size_t restart =
        find(master, "restart: slot 0, cause: died after it was ready, backoff 0 ms", reaped);
    const std::size_t refork = find(master, started(0, 2, replacement), restart);
    const std::size_t seen = find(master, "ready: " + slot_pid(0, replacement) + " ", refork);
    const std::size_t stop = find(master, "stop: graceful (SIGTERM), 2 workers to signal", seen);
    BOOST_TEST_REQUIRE(stop < master.size());
    for (auto [slot, pid] : {std::pair{0u, replacement}, {1u, other}}) {
      const std::size_t signalled =
          find(master, "signal: " + slot_pid(slot, pid) + " <- SIGTERM", stop);
      const std::size_t gone =
          find(master, "exit: " + slot_pid(slot, pid) + " exited with status 0", stop);
      BOOST_TEST(signalled < master.size(), "slot " << slot << " not signalled");
      BOOST_TEST(gone < master.size(), "slot " << slot << " exit not seen");
      BOOST_TEST(find(master, "reaped: " + slot_pid(slot, pid), gone) < master.size());
      BOOST_TEST(find(master, "not restarted: slot " + std::to_string(slot) + " (stopping)", gone) <
                 master.size());
    }
    BOOST_TEST_REQUIRE(!master.empty());
    BOOST_TEST(master.back() == "stopped: every worker reaped, exit status 0");
  }

  // Each worker: its own life, in order; the killed one never got to say
  // goodbye (SIGKILL cannot be caught), the others stopped cleanly.
  const std::string how = spawn_mode() ? ", spawned (exec'd " : ", forked";
  for (pid_t pid : {victim, replacement, other}) {
    const std::vector<std::string> worker = lines_of(events, pid);
    BOOST_TEST_CONTEXT("worker " << pid << "'s trace:\n" << joined(worker)) {
      std::size_t at = find(worker, "started: pid " + std::to_string(pid) + ", ppid " +
                                        std::to_string(server.pid()) + how);
      BOOST_TEST(at == 0u);
      for (std::string_view step : {"setup: begun", "setup: done", "ready: serving (model "}) {
        at = find(worker, step, at);
        BOOST_TEST(at < worker.size(), "no '" << step << "'");
      }
      if (pid == victim) {
        BOOST_TEST(find(worker, "exit:") == worker.size());
        continue;
      }
      for (std::string_view step :
           {"stop: received SIGTERM, graceful", "finish: handler.finish()", "exit: status 0"}) {
        at = find(worker, step, at);
        BOOST_TEST(at < worker.size(), "no '" << step << "'");
      }
      BOOST_TEST(worker.back() == "exit: status 0");
    }
  }
}

// Without --trace, not one trace line.
BOOST_AUTO_TEST_CASE(without_the_flag_there_is_no_trace) {
  UpperServer server({"--framed", "127.0.0.1:0"});
  server.process().signal(SIGTERM);
  BOOST_TEST_REQUIRE(status_or_running(server.process().wait_exit(tsan_stop_timeout)) == 0);
  BOOST_TEST(trace_events(server.process().stderr_text()).empty(), server.process().stderr_text());
}

// fork-per-connection: the worker says which child it forked for a
// connection, and that child says when it is done.
BOOST_AUTO_TEST_CASE(a_connection_child_is_traced_from_fork_to_exit) {
  UpperServer::Options options;
  options.workers = 1;
  UpperServer server({"--framed", "127.0.0.1:0", "--trace", "--model", "fork-per-connection"},
                     options);
  const pid_t worker = server.ready_snapshot().slots.at(0).pid;
  {
    auto client = TcpClient::connect(server.endpoint("framed"));
    BOOST_TEST(client.request_frame("child") == "CHILD");
  }
  pid_t child = 0;
  BOOST_TEST_REQUIRE(
      wait_until(
          [&] {
            const std::vector<Event> events = trace_events(server.process().stderr_text());
            const std::vector<std::string> lines = lines_of(events, worker);
            const std::size_t forked = find(lines, "fork: connection child -> pid ");
            if (forked == lines.size()) return false;
            child =
                static_cast<pid_t>(std::stol(lines[forked].substr(lines[forked].rfind(' ') + 1)));
            return lines_of(events, child) ==
                   std::vector<std::string>{"exit: connection child, status 0"};
          },
          state_timeout),
      "worker " << worker << ", child " << child << ":\n"
                << server.process().stderr_text());
}

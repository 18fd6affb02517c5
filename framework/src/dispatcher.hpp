// --accept pass: the master accepts every connection itself and hands it to
// an idle worker over that worker's Unix socket (SCM_RIGHTS), as in Stevens'
// figure 30.23. A worker says it is idle by sending one byte; the master
// accepts only while some worker is idle, so the rest wait in the backlog.
#pragma once

#include <poll.h>

#include <chrono>
#include <deque>
#include <optional>
#include <span>
#include <vector>

#include <prefork/core/passed_connection.hpp>
#include "master_service.hpp"
#include "worker_plan.hpp"

namespace prefork {

class Dispatcher final : public MasterService {
 public:
  explicit Dispatcher(WorkerPlan& plan);

  // What to wait on this turn: the channels, and the listeners when a
  // worker is idle; nothing once stopping.
  void add_poll_fds(std::vector<pollfd>& fds) override;
  // After the poll: collect idle reports, hand out connections.
  void serve(std::span<const pollfd> fds) override;
  // When the listeners are to be watched again after an EMFILE pause (the
  // master must wake by then); nullopt when not paused.
  std::optional<Clock::time_point> next_deadline() const override;
  void on_stop() override { stopped_ = true; }
  // A worker died: forget its idle reports and drop what it left unread.
  void on_slot_released(unsigned slot) override;

 private:
  void collect_idle(unsigned slot);
  void collect_all_idle();
  bool hand_out(std::size_t listener);

  WorkerPlan& plan_;
  std::deque<unsigned> idle_;                             // slots, oldest idle first
  std::chrono::steady_clock::time_point paused_until_{};  // after EMFILE
  bool stopped_ = false;
};

}  // namespace prefork

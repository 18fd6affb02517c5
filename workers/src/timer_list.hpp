// The event loop's connection timeouts: one intrusive list per timeout
// duration, kept in deadline order for free. Every node of a list gets the
// same duration, and is (re)armed with the loop turn's time, which never
// goes back: appending keeps the list sorted. So arming, re-arming and
// cancelling are a few pointer writes (no allocation, no search, no
// heap), the nearest deadline is the head, and the expired nodes are a
// prefix, found once per turn. A connection is re-armed at most once per
// turn (after its events), only when what it waits for changed or it made
// progress, and lazily (worker.cpp: a deadline is not moved by less than
// 1/16 of its timeout, at most 300 ms).
#pragma once

#include <algorithm>
#include <chrono>

namespace prefork {

struct TimerNode {
  using Clock = std::chrono::steady_clock;

  TimerNode() = default;
  TimerNode(const TimerNode&) = delete;
  TimerNode& operator=(const TimerNode&) = delete;
  ~TimerNode() { cancel(); }

  bool armed() const noexcept { return next != nullptr; }
  void cancel() noexcept {
    if (!armed()) return;
    prev->next = next;
    next->prev = prev;
    prev = next = nullptr;
  }

  TimerNode* prev = nullptr;
  TimerNode* next = nullptr;
  Clock::time_point deadline{};
};

class TimerList {
 public:
  using Clock = TimerNode::Clock;

  // 0: disabled, arm() only cancels.
  explicit TimerList(std::chrono::milliseconds duration = {}) noexcept
      : duration_(duration), slack_(std::min<Clock::duration>(duration / 16, lazy_limit)) {
    head_.prev = head_.next = &head_;
  }
  TimerList(const TimerList&) = delete;
  TimerList& operator=(const TimerList&) = delete;
  // Its nodes outlive it only disarmed.
  ~TimerList() {
    while (!empty()) head_.next->cancel();
    head_.prev = head_.next = nullptr;
  }

  std::chrono::milliseconds duration() const noexcept { return duration_; }
  // How far a deadline may stay early rather than be re-armed (lazy
  // re-arming, as nginx's timers): 1/16 of the duration, at most 300 ms.
  Clock::duration slack() const noexcept { return slack_; }
  bool empty() const noexcept { return head_.next == &head_; }

  // Due at `now` + duration, behind every node armed before. `now` must not
  // be earlier than any earlier call's (the loop turn's steady time).
  void arm(TimerNode& node, Clock::time_point now) noexcept {
    node.cancel();
    if (duration_.count() <= 0) return;
    node.deadline = now + duration_;
    node.prev = head_.prev;
    node.next = &head_;
    head_.prev->next = &node;
    head_.prev = &node;
  }

  // The nearest deadline, if any node is armed.
  const TimerNode* first() const noexcept { return empty() ? nullptr : head_.next; }

  // The first node due at `now`, disarmed; null once none is.
  TimerNode* pop_expired(Clock::time_point now) noexcept {
    if (empty() || head_.next->deadline > now) return nullptr;
    TimerNode* node = head_.next;
    node->cancel();
    return node;
  }

 private:
  static constexpr std::chrono::milliseconds lazy_limit{300};

  std::chrono::milliseconds duration_;
  Clock::duration slack_;
  TimerNode head_;  // the sentinel: head_.next is the first, head_.prev the last
};

}  // namespace prefork

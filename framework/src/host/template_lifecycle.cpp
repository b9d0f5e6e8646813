// The zygote template's side of the pool: it starts (and restarts) inside
// the dispatcher's poll loop, so a slow setup never holds up dispatch,
// results or time limits of running workers. Slots that need a worker forked
// wait in SlotState::waiting_for_template. Runs on the dispatcher thread only.
#include "pool_impl.hpp"

namespace mathpool {

using namespace pool_detail;
using Phase = detail::ZygoteTemplate::Phase;

void Pool::Impl::wait_for_template(Slot& slot) {
  enter(slot, SlotState::waiting_for_template);
  if (zygote_.phase() == Phase::stopped) begin_template_start();
}

void Pool::Impl::begin_template_start() {
  try {
    zygote_.begin_start();
    stats_dirty_ = true;
  } catch (const std::exception& e) {
    template_failed(e.what());
  }
}

void Pool::Impl::advance_template(Clock::time_point now) {
  if (zygote_.phase() != Phase::starting) return;
  std::optional<Value> ready;
  try {
    ready = zygote_.advance(now);
  } catch (const std::exception& e) {
    return template_failed(e.what());
  }
  if (!ready) return;
  stats_dirty_ = true;
  handle_load_errors(*ready);
  {
    std::lock_guard lock(mutex_);
    if (!startup_done_) catalogue_ = ready->at("analyses");
  }
  for (Slot& slot : slots_)
    if (slot.state == SlotState::waiting_for_template) start_slot(slot);
}

void Pool::Impl::template_failed(const std::string& reason) {
  stats_dirty_ = true;
  // A setup that killed the template: once more, and after a few times
  // without that analysis (note_setup_crash quarantines it).
  const std::string culprit = zygote_.died_in_setup();
  if (!culprit.empty() && setup_crashes_[culprit] < kQuarantineAfter) {
    note_setup_crash(culprit, reason);
    return begin_template_start();
  }
  // Otherwise each waiting slot's start failed (back-off, or the start-up fails).
  for (Slot& slot : slots_)
    if (slot.state == SlotState::waiting_for_template) could_not_start(slot, reason);
}

}  // namespace mathpool

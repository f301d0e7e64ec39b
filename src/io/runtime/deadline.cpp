#include "io/runtime/deadline.hpp"

namespace smtplb::io {

// The list of an io_context's Deadlines and the one timer that walks it.
// Touched only from that context's thread, like everything in a session.
class DeadlineService : public asio::execution_context::service {
  public:
    using key_type = DeadlineService;
    static inline asio::execution_context::id id;
    // Deadlines live on io_contexts. The timer is made here so that its own
    // service is registered first and so outlives this one.
    explicit DeadlineService(asio::execution_context& context)
        : service(context), timer_(static_cast<asio::io_context&>(context)) {}

    void add(Deadline& d) {
        d.next_ = head_;
        if (head_) head_->prev_ = &d;
        head_ = &d;
        if (!ticking_ && !shut_down_) tick();
    }
    void remove(Deadline& d) {
        if (cursor_ == &d) cursor_ = d.next_;
        if (firing_ == &d) firing_ = nullptr;
        if (d.prev_)
            d.prev_->next_ = d.next_;
        else if (head_ == &d)
            head_ = d.next_;
        if (d.next_) d.next_->prev_ = d.prev_;
        d.prev_ = d.next_ = nullptr;
    }

  private:
    void shutdown() override {
        shut_down_ = true;
        while (head_)
            remove(*head_);
        timer_.cancel();
    }
    void tick() {
        ticking_ = true;
        timer_.expires_after(kDeadlineResolution);
        timer_.async_wait([this](const error_code& ec) {
            ticking_ = false;
            if (ec || shut_down_) return;
            expire_passed();
            if (head_) tick();  // nothing to watch: no wake-ups
        });
    }
    void expire_passed() {
        auto now = Deadline::Clock::now();
        // cursor_ keeps the walk valid if a callback ends the next Deadline;
        // firing_ tells whether the callback ended its own.
        for (cursor_ = head_; cursor_;) {
            Deadline* d = cursor_;
            cursor_ = d->next_;
            if (!d->on_expire_ || now < d->deadline_) continue;
            d->expired_ = true;
            d->deadline_ = Deadline::Clock::time_point::max();  // once per arming
            // Moved out while it runs: it may stop() or destroy its Deadline.
            auto f = std::move(d->on_expire_);
            d->on_expire_ = nullptr;
            firing_ = d;
            f();
            if (firing_ != d) continue;  // destroyed by its own callback
            firing_ = nullptr;
            if (!d->stopped_) d->on_expire_ = std::move(f);
        }
    }

    Deadline* head_ = nullptr;
    Deadline* cursor_ = nullptr;
    Deadline* firing_ = nullptr;
    asio::steady_timer timer_;
    bool ticking_ = false;
    bool shut_down_ = false;
};

Deadline::Deadline(const asio::any_io_executor& executor, std::function<void()> on_expire)
    : service_(
          &asio::use_service<DeadlineService>(asio::query(executor, asio::execution::context))),
      on_expire_(std::move(on_expire)) {
    service_->add(*this);
}

Deadline::~Deadline() {
    service_->remove(*this);
}

void Deadline::stop() {
    stopped_ = true;
    on_expire_ = nullptr;
    deadline_ = Clock::time_point::max();
}

Alarm::Alarm(const asio::any_io_executor& executor, Millis after, std::function<void()> on_expire)
    : timer_(executor), state_(std::make_shared<State>()) {
    state_->on_expire = std::move(on_expire);
    timer_.expires_after(after);
    timer_.async_wait([state = state_](const error_code& ec) {
        if (ec || !state->armed) return;
        state->expired = true;
        state->armed = false;
        if (auto f = std::move(state->on_expire)) f();
    });
}

void Alarm::cancel() {
    if (!state_->armed) return;
    state_->armed = false;
    state_->on_expire = nullptr;
    timer_.cancel();
}

}  // namespace smtplb::io

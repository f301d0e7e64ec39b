#pragma once
#include <cstddef>
#include <map>
#include <memory>
#include <string>

#include "io/asio.hpp"
#include "io/relay.hpp"

namespace smtplb::io {

class Balancer;
class Spool;

// Delivers spooled messages through one configuration generation's pools,
// with the same backend choice, identity forwarding, retries and health as
// live traffic: oldest first, at most spool.concurrency at once, and only
// for pools with a backend that can take mail now. Per recipient: delivered
// ones are marked in the file (never sent again), permanent failures are
// bounced to the sender, temporary ones retried with backoff until
// max_queue_lifetime, then bounced.
class SpoolDeliverer {
  public:
    SpoolDeliverer(Balancer& balancer, Spool& spool);
    ~SpoolDeliverer();
    void start();
    // No new deliveries; those in flight finish.
    void stop();
    std::size_t in_flight() const { return in_flight_; }
    // Takes due messages up to the concurrency limit.
    void fill();

  private:
    awaitable<void> ticker();
    awaitable<void> deliver(std::string id);
    RelayContext& context_for(const std::string& listener);

    Balancer& balancer_;
    Spool& spool_;
    asio::steady_timer timer_;
    std::map<std::string, std::unique_ptr<RelayContext>> contexts_;
    std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
    std::size_t in_flight_ = 0;
    bool stopped_ = false;
};

}  // namespace smtplb::io

#pragma once
#include <cstddef>
#include <map>
#include <memory>
#include <set>
#include <string>

#include "io/asio.hpp"
#include "io/backend/transaction_executor.hpp"
#include "io/runtime/task_group.hpp"

namespace smtplb::io {

class Balancer;
class Spool;

// Delivers spooled messages through one configuration generation's pools,
// with the same backend choice, identity forwarding, retries and health as
// live traffic: oldest first, at most spool.concurrency at once, and only
// for pools with a backend that can take mail now. Per recipient: delivered
// ones are marked in the file (never sent again), permanent failures are
// bounced to the sender, temporary ones retried with backoff until
// max_queue_lifetime, then bounced. Its ticker and deliveries are tasks of
// the generation's group, which stops them with it; they refer to this
// deliverer and the generation, which are kept until that group is empty.
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
    // A worker: delivers `id`, then the client's other due messages.
    awaitable<void> deliver(std::string id);
    // One delivery attempt of one message.
    awaitable<void> deliver_one(std::string id, std::unique_ptr<TransactionExecutor>& relay);
    BackendAccess& context_for(const std::string& listener);
    // One session number per original client connection (address, port,
    // HELO, login): its messages share backend connections on which that
    // identity was already sent, as live mail does, instead of an XCLIENT
    // and an EHLO per message.
    std::uint64_t session_for(const proto::ClientIdentity& identity);

    Balancer& balancer_;
    Spool& spool_;
    asio::steady_timer timer_;
    std::map<std::string, std::unique_ptr<BackendAccess>> contexts_;
    std::map<std::string, std::uint64_t> sessions_;
    std::set<std::string> busy_clients_;  // with a delivery in flight
    std::size_t in_flight_ = 0;
    bool stopped_ = false;
    TaskGroup::StopCallback stop_registration_;
};

}  // namespace smtplb::io

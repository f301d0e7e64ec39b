// One delivery attempt from the spool. Apart from spool_deliverer.cpp: with
// the coroutine in the same translation unit as its co_spawn, GCC 12 warns
// falsely (-Wmismatched-new-delete) about the inlined frame.
#include "core/dsn.hpp"
#include "core/spool_outcome.hpp"
#include "core/tracking.hpp"
#include "io/balancer.hpp"
#include "io/spool/dsn_notices.hpp"
#include "io/spool/spool.hpp"
#include "io/spool/spool_deliverer.hpp"
#include "proto/xtext.hpp"

namespace smtplb::io {
namespace {

using core::SpoolArea;
using proto::Reply;
using proto::SpoolRecord;

struct Loaded {
    std::shared_ptr<core::SpoolMessage> message;
    std::string error;
    bool missing = false;  // deleted or moved meanwhile (by `smtplb queue`)
};

// One report on `who` (RFC 3464): the client's ENVID and each ORCPT, and
// for a failure with RET=FULL the whole message (up to bounce_size_limit).
core::DsnInput report_on(core::DsnKind kind, const core::SpoolReports::List& who,
                         const std::string& id, const core::SpoolMessage& message,
                         const std::string& hostname, const config::Spool& settings,
                         std::int64_t now_ms) {
    const auto& layout = message.layout();
    const auto& env = layout.envelope;
    core::DsnInput dsn;
    dsn.kind = kind;
    dsn.reporting_mta = hostname;
    dsn.queue_id = id;
    dsn.sender = env.sender.mailbox.address();
    dsn.arrival_ms = env.arrival_ms;
    dsn.now_ms = now_ms;
    dsn.retry_until_ms = env.arrival_ms + settings.max_queue_lifetime.count();
    dsn.envelope_id = proto::xtext_decode_lenient(env.params.envid);
    for (const auto& [i, reply] : who) {
        const auto& r = layout.recipients[i];
        auto status = kind == core::DsnKind::Relayed ? std::string("2.0.0")
                                                     : core::status_of(reply.code, reply.enhanced);
        dsn.failed.push_back(
            {r.mailbox.address(), status, reply.summary(), r.params.original_recipient()});
    }
    dsn.original_headers = core::header_section(message);
    if (kind == core::DsnKind::Failure && env.params.ret == proto::DsnReturn::Full)
        dsn.original_message = core::whole_message(message, settings.bounce_size_limit);
    return dsn;
}

// "No backend could take it" says little in a queue listing or a DSN: add
// what the last backend tried said.
void explain(const TransactionExecutor& relay, Reply& reply) {
    if (!relay.no_backend() || relay.attempts().empty() || reply.lines.empty()) return;
    const auto& last = relay.attempts().back();
    reply.lines[0] += " (last: " + last.backend + " at " + last.stage + ": " + last.reply + ")";
}

}  // namespace

awaitable<void> SpoolDeliverer::deliver(std::string id) {
    auto& queue = spool_.queue();
    const auto* entry = queue.find(id);
    const std::string client = entry ? entry->client : std::string();
    // One TransactionExecutor for this client's messages, one after another, as its own
    // session would send them: its backend connections keep the identity.
    std::unique_ptr<TransactionExecutor> relay;
    for (;;) {
        co_await deliver_one(id, relay);
        if (stopped_ || client.empty()) break;
        auto next = queue.take_next_for_client(client, [this](const auto& e) {
            const auto* pool = balancer_.pool(e.pool);
            return pool && pool->any_usable();
        });
        if (!next) break;
        id = *next;
    }
    if (relay) relay->release_connections();
    --in_flight_;
    busy_clients_.erase(client);
    fill();
}

awaitable<void> SpoolDeliverer::deliver_one(std::string id,
                                            std::unique_ptr<TransactionExecutor>& relay_slot) {
    auto& spool = spool_;
    auto& queue = spool.queue();
    auto* store = &spool.store();
    // A message spooled by this process is read here, on the event loop: no
    // fsync is involved, its file is in the page cache, and a thread hop
    // costs more than the read. One recovered from disk (its route not
    // known yet) is read on a writer thread: after a restart its file is
    // cold, and a million disk reads on the loop would hold up every
    // session and the index itself.
    std::function<Loaded()> load = [store, id] {
        Loaded loaded;
        loaded.message = store->load(SpoolArea::Queue, id, loaded.error);
        loaded.missing = !loaded.message && loaded.error.starts_with("cannot open");
        return loaded;
    };
    // Not `cond ? co_await ... : ...`: GCC 12 frees a temporary of such an
    // expression twice.
    const auto* queued = queue.find(id);
    Loaded loaded;
    if (queued && queued->client.empty())
        loaded = co_await spool.offload<Loaded>(std::move(load));
    else
        loaded = load();
    if (!loaded.message) {
        queue.remove(id);
        if (!loaded.missing) {
            std::function<std::error_code()> quarantine = [store, id] {
                return store->move(id, SpoolArea::Queue, SpoolArea::Corrupt);
            };
            auto moved = co_await spool.offload<std::error_code>(std::move(quarantine));
            ++spool.counters().corrupt;
            spool.log("event=spool_corrupt id=" + id + " error=\"" + loaded.error + "\"" +
                      (moved ? " move_error=\"" + moved.message() + "\"" : ""));
        }
        co_return;
    }
    const auto& message = *loaded.message;
    const auto& layout = message.layout();
    const auto& env = layout.envelope;
    const auto client = client_key(env.identity);
    queue.set_route(id, env.pool, client);
    core::Pool* pool = balancer_.pool(env.pool);
    if (!pool || !pool->any_usable()) {
        // The pool is gone from the configuration, or went down meanwhile.
        queue.postpone(id, pool ? std::chrono::seconds(1) : spool.settings().retry_initial);
        if (!pool) spool.log("event=spool_no_pool id=" + id + " pool=\"" + env.pool + "\"");
        co_return;
    }

    auto started = std::chrono::steady_clock::now();
    if (!relay_slot)
        relay_slot = std::make_unique<TransactionExecutor>(context_for(env.listener), env.identity,
                                                           session_for(env.identity));
    auto& relay = *relay_slot;
    relay.begin(*pool, env.sender, env.params);
    core::SpoolOutcome outcome;
    std::vector<std::size_t> accepted;
    // Some recipient waits because the pool had nothing to offer (not for
    // a reply about the message): then its wait ends when the pool returns.
    bool pool_unavailable = false;
    for (std::size_t i = 0; i < layout.recipients.size(); ++i) {
        const auto& r = layout.recipients[i];
        if (!r.pending()) continue;
        auto reply = co_await relay.add_recipient(r.mailbox, r.params);
        if (reply.transient() && relay.unavailable()) pool_unavailable = true;
        explain(relay, reply);
        if (reply.positive())
            accepted.push_back(i);  // its final word is the end of data's
        else
            outcome.record(i, reply);
    }
    Reply final_reply = Reply::make(250, "2.0.0", "Ok");
    if (!accepted.empty()) {
        co_await relay.start_data();
        final_reply = co_await relay.deliver(message);
        if (final_reply.transient() && relay.unavailable()) pool_unavailable = true;
        explain(relay, final_reply);
        for (auto i : accepted)
            outcome.record(i, final_reply);
    } else {
        co_await relay.abandon();
    }

    // Expired: what is left fails now.
    std::int64_t now_ms = balancer_.clock().wall_ms();
    if (!outcome.deferred.empty() && queue.expired(id, now_ms)) {
        ++spool.counters().expired;
        outcome.expire(spool.settings().max_queue_lifetime);
    }

    // The reports to the sender are committed before the failures are marked:
    // a crash in between sends one twice, never not at all.
    const bool null_sender = env.sender.null;
    const auto& settings = spool.settings();
    const auto& hostname = balancer_.config().server.hostname;
    const bool delay_due = settings.delay_warning_time.count() > 0 &&
                           now_ms - env.arrival_ms >= settings.delay_warning_time.count();
    const auto reports = core::plan_reports(outcome, layout.recipients, null_sender,
                                            !accepted.empty() && relay.relayed_without_dsn(),
                                            final_reply, delay_due);
    const ReportRoute route{hostname, env.listener, env.pool, env.sender.mailbox};
    if (!reports.failed.empty()) {
        auto dsn = report_on(core::DsnKind::Failure, reports.failed, id, message, hostname,
                             settings, now_ms);
        auto committed = co_await spool_report(spool, route, core::build_dsn(dsn), now_ms);
        if (committed.empty()) {
            outcome.keep_failures_for_later();
        } else {
            spool.counters().bounced += reports.failed.size();
            spool.log("event=spool_bounce id=" + id + " dsn_id=" + committed +
                      " recipients=" + std::to_string(reports.failed.size()));
        }
    }
    // Delay and relayed notices: a crash before the marks sends one twice.
    std::vector<std::size_t> warned;
    for (int kind = 0; kind < 2; ++kind) {
        const bool delay = kind == 0;
        const auto* list = delay ? &reports.delayed : &reports.relayed;
        if (list->empty()) continue;
        auto dsn = report_on(delay ? core::DsnKind::Delay : core::DsnKind::Relayed, *list, id,
                             message, hostname, settings, now_ms);
        auto committed = co_await spool_report(spool, route, core::build_dsn(dsn), now_ms);
        spool.log(std::string("event=") + (delay ? "spool_delay_notice" : "dsn_relayed_notice") +
                  " id=" + id + " recipients=" + std::to_string(list->size()) +
                  (committed.empty() ? " result=not_sent" : " result=spooled dsn_id=" + committed));
        if (delay && !committed.empty())
            for (const auto& entry : *list)
                warned.push_back(entry.first);
    }

    // With recipients left, each one's fate is recorded in the file (a
    // fdatasync each), so no later attempt sends to them again. Without,
    // the file simply goes: removing it is the record.
    const auto fate = outcome.fate(null_sender);
    const bool dead = fate == core::SpoolOutcome::Fate::Dead;
    std::vector<std::pair<std::uint64_t, SpoolRecord>> marks;
    for (const auto& [i, state] : outcome.marks(null_sender))
        marks.emplace_back(layout.recipients[i].offset, state);
    if (fate == core::SpoolOutcome::Fate::Keep)
        for (auto i : warned)
            marks.emplace_back(layout.recipients[i].offset, SpoolRecord::Warned);
    std::error_code file_error;
    const bool discard = fate == core::SpoolOutcome::Fate::Remove;  // at the end
    if (!marks.empty() || dead) {
        // Work for the writer threads is always a named std::function: a
        // lambda temporary inside co_await is destroyed twice by GCC 12.
        std::function<std::error_code()> record = [store, id, marks, dead] {
            for (const auto& [offset, state] : marks)
                if (auto ec = store->mark(SpoolArea::Queue, id, offset, state)) return ec;
            if (dead) return store->move(id, SpoolArea::Queue, SpoolArea::Dead);
            return std::error_code();
        };
        file_error = co_await spool.offload<std::error_code>(std::move(record));
    }

    spool.counters().delivered += outcome.delivered.size();
    const char* result = outcome.result(null_sender);
    if (fate == core::SpoolOutcome::Fate::Keep) {
        ++spool.counters().deferred;
        using Wait = core::SpoolQueue::Wait;
        auto why = !pool_unavailable        ? Wait::Backoff
                   : relay.held_by_limits() ? Wait::BackendLimits
                                            : Wait::PoolUnavailable;
        queue.deferred(id, outcome.deferred.front().second.summary(), why);
        spool.note_slot_waiters();
        if (const auto* e = queue.find(id)) {
            auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(
                e->next_attempt - balancer_.clock().now());
            // Only a backoff outlives a restart: after one, whether the
            // pool has something to offer is found out afresh.
            spool.remember_next_attempt(id, why == Wait::Backoff ? now_ms + wait.count() : now_ms);
        }
    } else {
        queue.remove(id);
        if (dead) ++spool.counters().dead;
    }
    if (file_error)
        spool.log("event=spool_file_error id=" + id + " error=\"" + file_error.message() + "\"");

    core::TrackingRecord r;
    r.time_ms = now_ms;
    r.listener = env.listener;
    r.client_address = env.identity.address.to_string();
    r.client_port = env.identity.port;
    r.helo = env.identity.helo;
    r.sender = env.sender.null ? "" : env.sender.mailbox.address();
    r.recipients = outcome.delivered.size();
    // Each recipient tried this time, with what became of it.
    auto add = [&](std::size_t i, const Reply& reply) {
        if (r.recipient_list.size() >= core::TrackingRecord::kMaxRecipientRecords)
            ++r.recipients_omitted;
        else
            r.recipient_list.push_back({layout.recipients[i].mailbox.address(), reply.summary()});
    };
    for (auto i : outcome.delivered)
        add(i, final_reply);
    for (const auto& [i, reply] : outcome.failed)
        add(i, reply);
    for (const auto& [i, reply] : outcome.deferred)
        add(i, reply);
    r.size = message.size();
    r.pool = env.pool;
    r.attempts = relay.attempts();
    r.queue_id = relay.queue_id();
    r.spool_id = id;
    r.result = result;
    r.reply = !outcome.deferred.empty() ? outcome.deferred.front().second.summary()
              : !outcome.failed.empty() ? outcome.failed.front().second.summary()
                                        : final_reply.summary();
    r.identity = relay.identity_result();
    r.duration_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                        std::chrono::steady_clock::now() - started)
                        .count();
    balancer_.tracking().write(r.to_json());
    // Last: `message` and `env` refer into it.
    if (discard) spool.discard(id, std::move(loaded.message));
}

}  // namespace smtplb::io

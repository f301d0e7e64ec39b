#pragma once
#include <gmock/gmock.h>

#include "core/limits/limit_store.hpp"

namespace smtplb::testing {

// A LimitStore whose answers a test scripts (a shared store that refuses,
// fails or must see a refund).
class MockLimitStore : public core::LimitStore {
  public:
    MOCK_METHOD(core::GcraDecision, rate,
                (std::size_t, std::string_view, const core::Gcra&, TimePoint, std::uint64_t,
                 core::Gcra::Duration),
                (override));
    MOCK_METHOD(core::GcraDecision, peek_rate,
                (std::size_t, std::string_view, const core::Gcra&, TimePoint, std::uint64_t,
                 core::Gcra::Duration),
                (override));
    MOCK_METHOD(void, refund_rate,
                (std::size_t, std::string_view, const core::Gcra&, TimePoint, std::uint64_t),
                (override));
    MOCK_METHOD(core::AcquireResult, acquire, (std::size_t, std::string_view, std::uint32_t),
                (override));
    MOCK_METHOD(void, release, (std::size_t, std::string_view), (override));
    MOCK_METHOD(std::uint32_t, in_use, (std::size_t, std::string_view), (override));
    MOCK_METHOD(void, expire, (TimePoint), (override));
    MOCK_METHOD(core::LimitStoreStats, stats, (std::size_t), (override));
    MOCK_METHOD(std::vector<core::LimitKeyState>, nearest,
                (std::size_t, const core::Gcra*, TimePoint, std::size_t), (override));
};

}  // namespace smtplb::testing

#include <gtest/gtest.h>

#include "proto/probe.hpp"

using namespace smtplb::proto;

namespace {

ProbeSession started(ProbePlan plan) {
    ProbeSession p(std::move(plan));
    p.connected();
    p.feed("220 hub ESMTP\r\n");
    EXPECT_EQ(p.output(), "EHLO lb\r\n");
    p.output().clear();
    return p;
}

ProbePlan plan(ProbeDepth depth, bool starttls = false, bool required = false) {
    ProbePlan p;
    p.depth = depth;
    p.helo = "lb";
    p.mail_from = "probe@example.org";
    p.starttls = starttls;
    p.tls_required = required;
    return p;
}

}  // namespace

TEST(ProbeTls, StarttlsDepthHandshakesAndReportsExpiry) {
    auto p = started(plan(ProbeDepth::Starttls));
    p.feed("250-hub\r\n250 STARTTLS\r\n");
    EXPECT_EQ(p.output(), "STARTTLS\r\n");
    p.output().clear();
    p.feed("220 2.0.0 Ready\r\n");
    ASSERT_TRUE(p.needs_tls());
    p.tls_started(certificate_warning(3 * 86400 + 5));
    ASSERT_TRUE(p.result());
    EXPECT_EQ(p.result()->verdict, ProbeVerdict::Healthy);
    EXPECT_EQ(p.result()->step, "starttls");
    EXPECT_EQ(p.result()->warning, "certificate expires in 3 days");
    EXPECT_EQ(p.output(), "QUIT\r\n");
}

TEST(ProbeTls, MailDepthGoesOnInsideTls) {
    auto p = started(plan(ProbeDepth::Mail, true, true));
    p.feed("250-hub\r\n250-PIPELINING\r\n250 STARTTLS\r\n");
    EXPECT_EQ(p.output(), "STARTTLS\r\n");  // not pipelined with MAIL
    p.output().clear();
    p.feed("220 Ready\r\n");
    p.tls_started("");
    EXPECT_EQ(p.output(), "EHLO lb\r\n");
    p.output().clear();
    p.feed("250 hub\r\n");
    EXPECT_EQ(p.output(), "MAIL FROM:<probe@example.org>\r\n");
    p.feed("452 4.3.1 Insufficient system storage\r\n");
    ASSERT_TRUE(p.result());
    EXPECT_EQ(p.result()->verdict, ProbeVerdict::Busy);
}

TEST(ProbeTls, MissingOrBrokenTlsIsDownWhenRequired) {
    auto not_offered = started(plan(ProbeDepth::Mail, true, true));
    not_offered.feed("250 hub\r\n");
    ASSERT_TRUE(not_offered.result());
    EXPECT_EQ(not_offered.result()->verdict, ProbeVerdict::Down);
    EXPECT_EQ(not_offered.result()->reason, "STARTTLS is not offered");

    auto opportunistic = started(plan(ProbeDepth::Mail, true, false));
    opportunistic.feed("250 hub\r\n");
    EXPECT_EQ(opportunistic.output(), "MAIL FROM:<probe@example.org>\r\n");

    auto failed = started(plan(ProbeDepth::Mail, true, true));
    failed.feed("250 STARTTLS\r\n");
    failed.feed("220 Ready\r\n");
    failed.tls_failed("certificate verification failed: unable to get local issuer certificate");
    ASSERT_TRUE(failed.result());
    EXPECT_EQ(failed.result()->verdict, ProbeVerdict::Down);
    EXPECT_TRUE(failed.done());

    auto injected = started(plan(ProbeDepth::Starttls));
    injected.feed("250 STARTTLS\r\n");
    injected.feed("220 Ready\r\n250 injected\r\n");
    ASSERT_TRUE(injected.result());
    EXPECT_EQ(injected.result()->verdict, ProbeVerdict::Down);
    EXPECT_FALSE(injected.needs_tls());
}

TEST(ProbeTls, CertificateWarnings) {
    EXPECT_EQ(certificate_warning(30 * 86400), "");
    EXPECT_EQ(certificate_warning(13 * 86400), "certificate expires in 13 days");
    EXPECT_EQ(certificate_warning(-2 * 86400), "certificate expired 2 days ago");
}

TEST(ProbeTls, ReportsTheCapabilitiesOfTheEhloInsideTls) {
    // The pool keeps them as the backend's (core/pool_capabilities.hpp).
    auto p = started(plan(ProbeDepth::Ehlo, true, true));
    p.feed("250-hub\r\n250-SIZE 1000\r\n250 STARTTLS\r\n");
    p.feed("220 Ready\r\n");
    p.tls_started("");
    p.feed("250-hub\r\n250-SIZE 10240000\r\n250-SMTPUTF8\r\n250 REQUIRETLS\r\n");
    ASSERT_TRUE(p.result());
    EXPECT_EQ(p.result()->verdict, ProbeVerdict::Healthy);
    ASSERT_TRUE(p.result()->capabilities);
    EXPECT_EQ(p.result()->capabilities->size_limit, 10240000u);
    EXPECT_TRUE(p.result()->capabilities->smtputf8);
    EXPECT_TRUE(p.result()->capabilities->requiretls);
    EXPECT_FALSE(p.result()->capabilities->starttls);
}

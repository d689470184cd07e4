// Every Prometheus metric the gateway exports, declared in one place with the seed's names,
// labels and buckets. Layers take a reference to `metrics` and record through it.
#pragma once

#include <memory>
#include <string>

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

namespace datahub::core {

class metrics {
  // Declared first: the families below are initialised from it.
  std::shared_ptr<prometheus::Registry> registry_;

 public:
  metrics();

  /// The Prometheus text exposition of everything registered.
  std::string serialize() const;

  prometheus::Registry& registry() { return *registry_; }

  // --- the seed's metrics ---
  /// labels: method, path (route name or admin template), status
  prometheus::Family<prometheus::Counter>& http_requests_total;
  /// labels: method, path, status; buckets 0.01 .. 10
  prometheus::Family<prometheus::Histogram>& http_request_duration_seconds;
  /// labels: key_id, limit_type (`minute` or `hour`)
  prometheus::Family<prometheus::Counter>& rate_limit_hits_total;
  prometheus::Family<prometheus::Gauge>& active_api_keys;
  /// labels: webhook_id, event, status
  prometheus::Family<prometheus::Counter>& webhook_deliveries_total;
  /// labels: webhook_id; buckets 0.1 .. 30
  prometheus::Family<prometheus::Histogram>& webhook_delivery_duration_seconds;
  /// labels: operation, table; buckets 0.001 .. 1
  prometheus::Family<prometheus::Histogram>& db_query_duration_seconds;
  /// labels: status (`total`, `idle`, `active`, `waiting`)
  prometheus::Family<prometheus::Gauge>& db_connection_pool;
  /// labels: operation, status
  prometheus::Family<prometheus::Counter>& redis_operations_total;

  // --- the gateway's own ---
  /// labels: queue (which bounded queue refused work)
  prometheus::Family<prometheus::Counter>& queue_rejections_total;
  /// labels: reason (why a connection was cut: header_timeout, idle_timeout, ...)
  prometheus::Family<prometheus::Counter>& connections_closed_total;
  /// key actors alive on this instance
  prometheus::Family<prometheus::Gauge>& key_actors;
  /// labels: route, outcome (`502`, `504`, ...): upstream failures
  prometheus::Family<prometheus::Counter>& upstream_errors_total;
  /// usage key-minutes waiting to be written
  prometheus::Family<prometheus::Gauge>& usage_buffer_entries;

  static const prometheus::Histogram::BucketBoundaries& http_buckets();
  static const prometheus::Histogram::BucketBoundaries& webhook_buckets();
  static const prometheus::Histogram::BucketBoundaries& db_buckets();
};

}  // namespace datahub::core

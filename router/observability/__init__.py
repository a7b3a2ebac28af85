"""What operators watch: Prometheus metrics, JSON logs, and the request id that ties a log line to a reply."""

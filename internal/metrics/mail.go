package metrics

import "github.com/prometheus/client_golang/prometheus"

func newMailMessages(reg *prometheus.Registry) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "mail_messages_total",
		Help: "Outbox messages by kind and the outcome of one delivery attempt: sent, retried (will be tried again) or failed (given up).",
	}, []string{"kind", "outcome"})
	reg.MustRegister(c)
	return c
}

// Mail records the outcome of one delivery attempt of a message of kind (verify_email, …):
// sent, retried or failed.
func (m *Metrics) Mail(kind, outcome string) {
	if m != nil {
		m.mailMessages.WithLabelValues(kind, outcome).Inc()
	}
}

package metrics

import "github.com/prometheus/client_golang/prometheus"

func newPasswordRehashes(reg *prometheus.Registry) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "password_rehashes_total",
		Help: "Stored password hashes replaced at login because their algorithm or cost was not the configured one, by the new hash's algorithm.",
	}, []string{"algorithm"})
	reg.MustRegister(c)
	return c
}

// PasswordRehashed records a stored hash replaced by one made with algorithm (bcrypt or
// argon2id) at login.
func (m *Metrics) PasswordRehashed(algorithm string) {
	if m != nil {
		m.passwordRehashes.WithLabelValues(algorithm).Inc()
	}
}

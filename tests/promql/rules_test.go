// The alerts of manifests/components/monitoring/prometheusrule.yaml evaluated by
// Prometheus's own PromQL engine (promql/promqltest, the language of `promtool test
// rules`) on the series two `serve` replicas export: a leader that cycles and a standby
// whose cycle series stay at their start values (last success 0). Each alert must stay
// quiet while the leader is healthy, whatever the standby says, and fire when the leader is
// not. Run by tests/unit/test_alerts.py (`go test` here).
package promql

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/promqltest"
	"go.yaml.in/yaml/v2"
)

type rule struct {
	Alert string `yaml:"alert"`
	Expr  string `yaml:"expr"`
}

type prometheusRule struct {
	Spec struct {
		Groups []struct {
			Rules []rule `yaml:"rules"`
		} `yaml:"groups"`
	} `yaml:"spec"`
}

func alerts(t *testing.T) map[string]string {
	t.Helper()
	data, err := os.ReadFile("../../manifests/components/monitoring/prometheusrule.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc prometheusRule
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, group := range doc.Spec.Groups {
		for _, r := range group.Rules {
			out[r.Alert] = strings.Join(strings.Fields(r.Expr), " ")
		}
	}
	return out
}

const replica = `{job="prepull-agent-metrics", namespace="prepull-agent", pod="%s"}`

func series(metric, pod, points string) string {
	return fmt.Sprintf("    %s%s %s\n", metric, fmt.Sprintf(replica, pod), points)
}

func run(t *testing.T, load, evals string) {
	t.Helper()
	engine := promqltest.NewTestEngineWithOpts(t, promql.EngineOpts{
		MaxSamples: 100000, Timeout: 10 * time.Second, LookbackDelta: 5 * time.Minute,
		EnableAtModifier: true, EnableNegativeOffset: true,
	})
	promqltest.RunTest(t, "load 1m\n"+load+"\n"+evals, engine)
}

func TestEveryAlertIsValidPromQL(t *testing.T) {
	rules := alerts(t)
	if len(rules) < 6 {
		t.Fatalf("only %d alerts", len(rules))
	}
	for _, expr := range rules {
		run(t, series("up", "a", "1x5"), fmt.Sprintf("eval instant at 1m %s\n", expr))
	}
}

// Minute m: the leader succeeds every minute (its last success is m*60 s), the standby
// exports 0 throughout.
func TestNoRecentSuccessIgnoresTheStandbyAndFiresWhenTheLeaderStops(t *testing.T) {
	expr := alerts(t)["PrepullAgentNoRecentSuccess"]
	healthy := series("prepull_agent_last_success_timestamp_seconds", "a", "0+60x90") +
		series("prepull_agent_last_success_timestamp_seconds", "b", "0x90")
	run(t, healthy, fmt.Sprintf("eval instant at 80m %s\n", expr))

	// The leader's last success at 10m (600 s), nothing since: quiet within three
	// intervals (2700 s), firing after.
	stuck := series("prepull_agent_last_success_timestamp_seconds", "a", "0+60x10 600x80") +
		series("prepull_agent_last_success_timestamp_seconds", "b", "0x90")
	run(t, stuck, fmt.Sprintf("eval instant at 50m %s\n\neval instant at 60m %s\n    {namespace=\"prepull-agent\"} 3000\n",
		expr, expr))

	// No replica ever succeeded: both export 0.
	never := series("prepull_agent_last_success_timestamp_seconds", "a", "0x90") +
		series("prepull_agent_last_success_timestamp_seconds", "b", "0x90")
	run(t, never, fmt.Sprintf("eval instant at 60m %s\n    {namespace=\"prepull-agent\"} 3600\n", expr))
}

func TestNoLeaderFiresOnlyWhenNoReplicaLeads(t *testing.T) {
	expr := alerts(t)["PrepullAgentNoLeader"]
	run(t, series("prepull_agent_leader", "a", "1x30")+series("prepull_agent_leader", "b", "0x30"),
		fmt.Sprintf("eval instant at 20m %s\n", expr))
	run(t, series("prepull_agent_leader", "a", "0x30")+series("prepull_agent_leader", "b", "0x30"),
		fmt.Sprintf("eval instant at 20m %s\n    {namespace=\"prepull-agent\"} 0\n", expr))
}

func TestCyclesFailingReadsTheLeaderNotTheStandby(t *testing.T) {
	expr := alerts(t)["PrepullAgentCyclesFailing"]
	run(t, series("prepull_agent_consecutive_failed_cycles", "a", "0x30")+
		series("prepull_agent_consecutive_failed_cycles", "b", "0x30"),
		fmt.Sprintf("eval instant at 20m %s\n", expr))
	run(t, series("prepull_agent_consecutive_failed_cycles", "a", "0 1 2 3x27")+
		series("prepull_agent_consecutive_failed_cycles", "b", "0x30"),
		fmt.Sprintf("eval instant at 20m %s\n    {namespace=\"prepull-agent\"} 3\n", expr))
}

func TestSourceFailingNamesTheKind(t *testing.T) {
	expr := alerts(t)["PrepullAgentSourceFailing"]
	load := "    prepull_agent_source_failed{job=\"prepull-agent-metrics\", namespace=\"prepull-agent\", pod=\"a\", kind=\"Notebook\"} 1x30\n" +
		"    prepull_agent_source_failed{job=\"prepull-agent-metrics\", namespace=\"prepull-agent\", pod=\"a\", kind=\"Node\"} 0x30\n"
	run(t, load, fmt.Sprintf("eval instant at 20m %s\n    {namespace=\"prepull-agent\", kind=\"Notebook\"} 1\n", expr))
}

func TestTargetNotUpdatedNamesTheTarget(t *testing.T) {
	expr := alerts(t)["PrepullAgentTargetNotUpdated"]
	load := "    prepull_agent_target_failed{job=\"prepull-agent-metrics\", namespace=\"prepull-agent\", pod=\"a\", target=\"openshift-operators/image-puller\"} 1x30\n"
	run(t, load, fmt.Sprintf("eval instant at 20m %s\n    {namespace=\"prepull-agent\", target=\"openshift-operators/image-puller\"} 1\n", expr))
}

func TestDownFiresWithoutAScrapedReplica(t *testing.T) {
	expr := alerts(t)["PrepullAgentDown"]
	run(t, series("up", "a", "1x30")+series("up", "b", "0x30"), fmt.Sprintf("eval instant at 20m %s\n", expr))
	run(t, series("up", "a", "0x30")+series("up", "b", "0x30"),
		fmt.Sprintf("eval instant at 20m %s\n    {} 1\n", expr))
}

package wire_test

import (
	"encoding/json"
	"testing"

	"github.com/daguha/daguha/cluster"
	"github.com/daguha/daguha/ops/wire"
)

// The JSON names, their order and what is left out when empty are the
// API's contract: these pin them for the bodies every client reads.
func TestBodiesEncodeAsTheAPIHasAlwaysAnswered(t *testing.T) {
	cases := []struct {
		name string
		body any
		want string
	}{
		{"empty run", wire.Run{}, `{"dag_name":"","dag_run_id":"","status":"","params":"","worker_selector":null,"enqueued_at":"","started_at":"","finished_at":"","worker_id":"","attempt":0,"root_dag_run_name":"","root_dag_run_id":"","parent_dag_run_name":"","parent_dag_run_id":"","outputs":null,"steps":null,"attempts":null,"create_index":0,"modify_index":0}`},
		{"run with every optional field", wire.Run{Error: "e", Reason: "r", CancelRequested: true, ParentStepName: "p", ScheduledSlot: "s", Children: []wire.Child{{}}},
			`{"dag_name":"","dag_run_id":"","status":"","params":"","worker_selector":null,"enqueued_at":"","started_at":"","finished_at":"","worker_id":"","attempt":0,"error":"e","reason":"r","cancel_requested":true,"root_dag_run_name":"","root_dag_run_id":"","parent_dag_run_name":"","parent_dag_run_id":"","parent_step_name":"p","scheduled_slot":"s","outputs":null,"steps":null,"attempts":null,"children":[{"dag_name":"","dag_run_id":"","status":"","step_name":"","worker_id":"","started_at":"","finished_at":""}],"create_index":0,"modify_index":0}`},
		{"step", wire.Step{Retry: 2, ChildRunID: "c"}, `{"name":"","status":"","exit_code":0,"started_at":"","finished_at":"","output_tail":"","retry":2,"child_dag_run_id":"c"}`},
		{"attempt", wire.Attempt{}, `{"attempt":0,"worker_id":"","fencing_token":0,"started_at":"","ended_at":"","outcome":""}`},
		{"run list", wire.RunList{}, `{"runs":null,"truncated":false}`},
		{"enqueued", wire.Enqueued{DagRunID: "r"}, `{"dag_run_id":"r","created":false}`},
		{"cancelled", wire.Cancelled{DagRunID: "r"}, `{"dag_run_id":"r"}`},
		{"retried", wire.Retried{DagRunID: "r", Status: "queued"}, `{"dag_run_id":"r","status":"queued"}`},
		{"dequeued", wire.Dequeued{DagRunID: "r", Status: "cancelled"}, `{"dag_run_id":"r","status":"cancelled"}`},
		{"restarted", wire.Restarted{DagRunID: "n", Created: true, RestartedFrom: "r"}, `{"dag_run_id":"n","created":true,"restarted_from":"r"}`},
		{"cancelled runs", wire.CancelledRuns{DagName: "d", DagRunIDs: []string{}}, `{"dag_name":"d","dag_run_ids":[]}`},
		{"run retried, in its queue", wire.Run{Retries: 1, Queue: "q"}, `{"dag_name":"","dag_run_id":"","status":"","params":"","worker_selector":null,"enqueued_at":"","started_at":"","finished_at":"","worker_id":"","attempt":0,"root_dag_run_name":"","root_dag_run_id":"","parent_dag_run_name":"","parent_dag_run_id":"","retries":1,"queue":"q","outputs":null,"steps":null,"attempts":null,"create_index":0,"modify_index":0}`},
		{"dag", wire.Dag{}, `{"name":"","description":"","schedule":null,"worker_selector":null,"params":"","steps":null,"local_dags":null,"file":"","content_hash":"","updated_at":"","create_index":0,"modify_index":0}`},
		{"dag step", wire.DagStep{ChildDag: "x"}, `{"name":"","depends":null,"run":"x"}`},
		{"dag deleted", wire.DagDeleted{Name: "n", Result: "deleted"}, `{"name":"n","result":"deleted"}`},
		{"worker", wire.Worker{RunningTasks: []wire.RunningTask{{}}}, `{"id":"","labels":null,"auto_labels":null,"executors":null,"health_status":"","last_heartbeat":"","running_tasks":[{"dag_name":"","dag_run_id":"","root_dag_run_name":"","root_dag_run_id":"","parent_dag_run_name":"","parent_dag_run_id":"","started_at":""}],"version":""}`},
		{"peer, with the versions gossip gives", wire.Peer{ID: "s1", Versions: cluster.Versions{Version: "0.1.0", StateSchema: 1, WireProtocol: 1}},
			`{"id":"s1","address":"","voter":false,"leader":false,"version":"0.1.0","state_schema":1,"wire_protocol":1}`},
		{"leader", wire.Leader{}, `{"leader":"","address":""}`},
		{"self", wire.Self{}, `{"node":"","role":"","leader":"","bootstrap":"","raft":{"has_state":false,"term":0,"last_index":0,"commit_index":0,"applied_index":0,"fsm_index":0}}`},
		{"peer removed", wire.PeerRemoved{Removed: "s"}, `{"removed":"s"}`},
		{"leadership transferred", wire.LeadershipTransferred{}, `{"transferred_to":""}`},
		{"restored", wire.Restored{RestoredBytes: 7}, `{"restored_bytes":7}`},
		{"error", wire.Error{Error: "e"}, `{"error":"e"}`},
		{"empty enqueue request", wire.EnqueueRequest{}, `{}`},
	}
	for _, tc := range cases {
		data, err := json.Marshal(tc.body)
		if err != nil {
			t.Fatal(err)
		}
		if string(data) != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.name, data, tc.want)
		}
	}
}

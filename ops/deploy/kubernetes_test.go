package deploy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// The parts of Kubernetes objects the checks read: no client-go, just
// the fields, spelled as the API spells them.

type object struct {
	APIVersion string   `yaml:"apiVersion"`
	Kind       string   `yaml:"kind"`
	Metadata   metadata `yaml:"metadata"`
	Spec       spec     `yaml:"spec"`
	Data       map[string]string
	StringData map[string]string `yaml:"stringData"`
	file       string
}

type metadata struct {
	Name        string            `yaml:"name"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

type spec struct {
	// Service
	ClusterIP                string            `yaml:"clusterIP"`
	PublishNotReadyAddresses bool              `yaml:"publishNotReadyAddresses"`
	Ports                    []servicePort     `yaml:"ports"`
	ServiceSelector          map[string]string `yaml:"-"`
	// Workloads and PodDisruptionBudget
	Replicas             *int          `yaml:"replicas"`
	ServiceName          string        `yaml:"serviceName"`
	PodManagementPolicy  string        `yaml:"podManagementPolicy"`
	Selector             yaml.Node     `yaml:"selector"`
	Template             podTemplate   `yaml:"template"`
	VolumeClaimTemplates []volumeClaim `yaml:"volumeClaimTemplates"`
	MinAvailable         *int          `yaml:"minAvailable"`
	// matchLabels is Selector's, for workloads and PDBs.
	matchLabels map[string]string
}

type servicePort struct {
	Name       string    `yaml:"name"`
	Port       int       `yaml:"port"`
	TargetPort yaml.Node `yaml:"targetPort"`
	Protocol   string    `yaml:"protocol"`
}

type volumeClaim struct {
	Metadata metadata `yaml:"metadata"`
}

type podTemplate struct {
	Metadata metadata `yaml:"metadata"`
	Spec     podSpec  `yaml:"spec"`
}

type podSpec struct {
	InitContainers []container `yaml:"initContainers"`
	Containers     []container `yaml:"containers"`
	Volumes        []volume    `yaml:"volumes"`
}

type volume struct {
	Name   string `yaml:"name"`
	Secret *struct {
		SecretName string `yaml:"secretName"`
	} `yaml:"secret"`
	ConfigMap *struct {
		Name string `yaml:"name"`
	} `yaml:"configMap"`
	EmptyDir any `yaml:"emptyDir"`
}

type container struct {
	Name           string          `yaml:"name"`
	Image          string          `yaml:"image"`
	Args           []string        `yaml:"args"`
	Command        []string        `yaml:"command"`
	Env            []envVar        `yaml:"env"`
	Ports          []containerPort `yaml:"ports"`
	ReadinessProbe *probe          `yaml:"readinessProbe"`
	LivenessProbe  *probe          `yaml:"livenessProbe"`
	StartupProbe   *probe          `yaml:"startupProbe"`
	Resources      struct {
		Limits   map[string]any `yaml:"limits"`
		Requests map[string]any `yaml:"requests"`
	} `yaml:"resources"`
	VolumeMounts []struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
	} `yaml:"volumeMounts"`
}

type envVar struct {
	Name      string `yaml:"name"`
	ValueFrom *struct {
		SecretKeyRef *struct {
			Name string `yaml:"name"`
			Key  string `yaml:"key"`
		} `yaml:"secretKeyRef"`
		FieldRef *struct {
			FieldPath string `yaml:"fieldPath"`
		} `yaml:"fieldRef"`
	} `yaml:"valueFrom"`
}

type containerPort struct {
	Name          string `yaml:"name"`
	ContainerPort int    `yaml:"containerPort"`
	Protocol      string `yaml:"protocol"`
}

type probe struct {
	Exec *struct {
		Command []string `yaml:"command"`
	} `yaml:"exec"`
	GRPC *struct {
		Port    int    `yaml:"port"`
		Service string `yaml:"service"`
	} `yaml:"grpc"`
	HTTPGet *struct {
		Path string    `yaml:"path"`
		Port yaml.Node `yaml:"port"`
	} `yaml:"httpGet"`
	TCPSocket *struct {
		Port yaml.Node `yaml:"port"`
	} `yaml:"tcpSocket"`
}

// loadManifests reads every YAML document of every file in dir.
func loadManifests(t *testing.T, dir string) []*object {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in %s (%v)", dir, err)
	}
	var objects []*object
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(data))
		for i := 0; ; i++ {
			var raw yaml.Node
			if err := dec.Decode(&raw); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatalf("%s document %d: %v", file, i, err)
			}
			var o object
			if err := raw.Decode(&o); err != nil {
				t.Fatalf("%s document %d: %v", file, i, err)
			}
			o.file = filepath.Base(file)
			if o.APIVersion == "" || o.Kind == "" || o.Metadata.Name == "" {
				t.Fatalf("%s document %d is not a Kubernetes object: apiVersion %q, kind %q, name %q", file, i, o.APIVersion, o.Kind, o.Metadata.Name)
			}
			// A Service's selector is a plain map; a workload's and a
			// PDB's is a LabelSelector with matchLabels.
			if o.Kind == "Service" {
				if err := o.Spec.Selector.Decode(&o.Spec.ServiceSelector); err != nil {
					t.Fatalf("%s: Service %s selector: %v", file, o.Metadata.Name, err)
				}
			} else if !o.Spec.Selector.IsZero() {
				var ls struct {
					MatchLabels map[string]string `yaml:"matchLabels"`
				}
				if err := o.Spec.Selector.Decode(&ls); err != nil {
					t.Fatalf("%s: %s %s selector: %v", file, o.Kind, o.Metadata.Name, err)
				}
				o.Spec.matchLabels = ls.MatchLabels
			}
			objects = append(objects, &o)
		}
	}
	return objects
}

func subset(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func find(objects []*object, kind, name string) *object {
	for _, o := range objects {
		if o.Kind == kind && o.Metadata.Name == name {
			return o
		}
	}
	return nil
}

func workloads(objects []*object) []*object {
	var out []*object
	for _, o := range objects {
		if o.Kind == "StatefulSet" || o.Kind == "Deployment" {
			out = append(out, o)
		}
	}
	return out
}

// portOf resolves a port reference (a number or a container port's name)
// against a pod's containers.
func portOf(ref yaml.Node, pod podSpec) (int, bool) {
	for _, c := range pod.Containers {
		for _, p := range c.Ports {
			if ref.Value == p.Name || ref.Value == strconv.Itoa(p.ContainerPort) {
				return p.ContainerPort, true
			}
		}
	}
	return 0, false
}

func hasContainerPort(c container, port int) bool {
	for _, p := range c.Ports {
		if p.ContainerPort == port {
			return true
		}
	}
	return false
}

func flagValue(args []string, name string) (string, bool) {
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v, true
		}
	}
	return "", false
}

// TestKubernetesManifests parses every manifest into Kubernetes objects
// and checks what must agree between them for the deployment to work.
func TestKubernetesManifests(t *testing.T) {
	objects := loadManifests(t, "kubernetes")

	var sts *object
	for _, o := range objects {
		if o.Kind == "StatefulSet" {
			if sts != nil {
				t.Fatalf("two StatefulSets: %s and %s", sts.Metadata.Name, o.Metadata.Name)
			}
			sts = o
		}
	}
	if sts == nil {
		t.Fatal("no StatefulSet of servers")
	}
	replicas := *sts.Spec.Replicas
	if replicas != 3 {
		t.Errorf("StatefulSet %s has %d replicas; want 3", sts.Metadata.Name, replicas)
	}
	if sts.Spec.PodManagementPolicy != "Parallel" {
		t.Errorf("StatefulSet podManagementPolicy %q: no server is ready before the cluster forms, so it must be Parallel", sts.Spec.PodManagementPolicy)
	}

	t.Run("workload selectors match their pod templates", func(t *testing.T) {
		for _, w := range workloads(objects) {
			if !subset(w.Spec.matchLabels, w.Spec.Template.Metadata.Labels) {
				t.Errorf("%s %s: selector %v does not select its own pods %v", w.Kind, w.Metadata.Name, w.Spec.matchLabels, w.Spec.Template.Metadata.Labels)
			}
		}
	})

	t.Run("services select pods and target their ports", func(t *testing.T) {
		for _, svc := range objects {
			if svc.Kind != "Service" {
				continue
			}
			var selected []*object
			for _, w := range workloads(objects) {
				if subset(svc.Spec.ServiceSelector, w.Spec.Template.Metadata.Labels) {
					selected = append(selected, w)
				}
			}
			if len(selected) == 0 {
				t.Errorf("Service %s selects no pods (selector %v)", svc.Metadata.Name, svc.Spec.ServiceSelector)
				continue
			}
			for _, w := range selected {
				for _, p := range svc.Spec.Ports {
					target := p.TargetPort
					if target.IsZero() {
						target = yaml.Node{Kind: yaml.ScalarNode, Value: strconv.Itoa(p.Port)}
					}
					if _, ok := portOf(target, w.Spec.Template.Spec); !ok {
						t.Errorf("Service %s port %s targets %q, which %s %s's containers do not expose", svc.Metadata.Name, p.Name, target.Value, w.Kind, w.Metadata.Name)
					}
				}
			}
		}
	})

	t.Run("headless service names the servers for the join seeds", func(t *testing.T) {
		headless := find(objects, "Service", sts.Spec.ServiceName)
		if headless == nil {
			t.Fatalf("StatefulSet serviceName %q is no Service", sts.Spec.ServiceName)
		}
		if headless.Spec.ClusterIP != "None" {
			t.Errorf("Service %s has clusterIP %q; a StatefulSet's governing Service is headless (None)", headless.Metadata.Name, headless.Spec.ClusterIP)
		}
		if !headless.Spec.PublishNotReadyAddresses {
			t.Errorf("Service %s must publish not-ready addresses: servers resolve each other before any is ready", headless.Metadata.Name)
		}
		if !subset(headless.Spec.ServiceSelector, sts.Spec.Template.Metadata.Labels) {
			t.Errorf("Service %s does not select the servers", headless.Metadata.Name)
		}
		server := sts.Spec.Template.Spec.Containers[0]
		var want []string
		for i := range replicas {
			want = append(want, fmt.Sprintf("%s-%d.%s:8301", sts.Metadata.Name, i, headless.Metadata.Name))
		}
		if !hasContainerPort(server, 8301) {
			t.Errorf("the server container does not expose the gossip port 8301 its seeds name")
		}
		check := func(who string, args []string) {
			join, ok := flagValue(args, "-join")
			if !ok {
				t.Errorf("%s has no -join", who)
				return
			}
			if join != strings.Join(want, ",") {
				t.Errorf("%s joins %s; want every server by its stable name: %s", who, join, strings.Join(want, ","))
			}
		}
		check("the server", server.Args)
		if expect, _ := flagValue(server.Args, "-bootstrap-expect"); expect != strconv.Itoa(replicas) {
			t.Errorf("-bootstrap-expect=%s but %d replicas", expect, replicas)
		}
		for _, w := range workloads(objects) {
			if w.Kind == "Deployment" {
				check("Deployment "+w.Metadata.Name, w.Spec.Template.Spec.Containers[0].Args)
			}
		}
	})

	t.Run("PDB keeps a quorum of servers", func(t *testing.T) {
		var pdb *object
		for _, o := range objects {
			if o.Kind == "PodDisruptionBudget" {
				pdb = o
			}
		}
		if pdb == nil {
			t.Fatal("no PodDisruptionBudget")
		}
		if pdb.Spec.MinAvailable == nil || *pdb.Spec.MinAvailable != 2 {
			t.Errorf("PDB %s minAvailable %s; want 2 of 3", pdb.Metadata.Name, fmtInt(pdb.Spec.MinAvailable))
		}
		for _, w := range workloads(objects) {
			selects := subset(pdb.Spec.matchLabels, w.Spec.Template.Metadata.Labels)
			if selects != (w == sts) {
				t.Errorf("PDB %s selects %s %s: %v; it must select the servers and only them", pdb.Metadata.Name, w.Kind, w.Metadata.Name, selects)
			}
		}
	})

	t.Run("probes reach exposed ports", func(t *testing.T) {
		address := regexp.MustCompile(`^-address=[^:]+:(\d+)$`)
		for _, w := range workloads(objects) {
			pod := w.Spec.Template.Spec
			for _, c := range pod.Containers {
				probes := map[string]*probe{"readiness": c.ReadinessProbe, "liveness": c.LivenessProbe, "startup": c.StartupProbe}
				if c.LivenessProbe == nil {
					t.Errorf("%s %s container %s has no liveness probe", w.Kind, w.Metadata.Name, c.Name)
				}
				for kind, p := range probes {
					if p == nil {
						continue
					}
					where := fmt.Sprintf("%s %s container %s %s probe", w.Kind, w.Metadata.Name, c.Name, kind)
					switch {
					case p.Exec != nil:
						cmd := p.Exec.Command
						if len(cmd) < 2 || cmd[0] != "daguha" || cmd[1] != "health" {
							t.Errorf("%s runs %v; want daguha health", where, cmd)
							continue
						}
						found := false
						for _, arg := range cmd {
							if m := address.FindStringSubmatch(arg); m != nil {
								found = true
								port, _ := strconv.Atoi(m[1])
								if !hasContainerPort(c, port) {
									t.Errorf("%s asks port %d, which the container does not expose", where, port)
								}
							}
						}
						if !found {
							t.Errorf("%s gives daguha health no -address", where)
						}
						if kind == "liveness" && !strings.Contains(strings.Join(cmd, " "), "-service=liveness") {
							t.Errorf("%s asks the leader-aware service: an election would restart servers", where)
						}
					case p.GRPC != nil:
						if !hasContainerPort(c, p.GRPC.Port) {
							t.Errorf("%s uses port %d, which the container does not expose", where, p.GRPC.Port)
						}
					case p.HTTPGet != nil:
						if _, ok := portOf(p.HTTPGet.Port, podSpec{Containers: []container{c}}); !ok {
							t.Errorf("%s uses port %q, which the container does not expose", where, p.HTTPGet.Port.Value)
						}
					case p.TCPSocket != nil:
						if _, ok := portOf(p.TCPSocket.Port, podSpec{Containers: []container{c}}); !ok {
							t.Errorf("%s uses port %q, which the container does not expose", where, p.TCPSocket.Port.Value)
						}
					default:
						t.Errorf("%s has no handler", where)
					}
				}
			}
			if w == sts && sts.Spec.Template.Spec.Containers[0].ReadinessProbe == nil {
				t.Errorf("the servers have no readiness probe")
			}
		}
	})

	t.Run("volumes, secrets and files referenced exist", func(t *testing.T) {
		for _, w := range workloads(objects) {
			pod := w.Spec.Template.Spec
			volumes := map[string]volume{}
			for _, v := range pod.Volumes {
				volumes[v.Name] = v
				if v.Secret != nil && find(objects, "Secret", v.Secret.SecretName) == nil {
					t.Errorf("%s %s volume %s: no Secret %s", w.Kind, w.Metadata.Name, v.Name, v.Secret.SecretName)
				}
			}
			claims := map[string]bool{}
			for _, c := range w.Spec.VolumeClaimTemplates {
				claims[c.Metadata.Name] = true
			}
			mounts := map[string]string{} // mount path -> volume
			for _, c := range append(append([]container{}, pod.InitContainers...), pod.Containers...) {
				for _, m := range c.VolumeMounts {
					if _, ok := volumes[m.Name]; !ok && !claims[m.Name] {
						t.Errorf("%s %s container %s mounts %s, which is no volume or claim", w.Kind, w.Metadata.Name, c.Name, m.Name)
					}
					mounts[m.MountPath] = m.Name
				}
				for _, e := range c.Env {
					if e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
						continue
					}
					ref := e.ValueFrom.SecretKeyRef
					secret := find(objects, "Secret", ref.Name)
					if secret == nil {
						t.Errorf("%s %s env %s: no Secret %s", w.Kind, w.Metadata.Name, e.Name, ref.Name)
					} else if _, ok := secret.StringData[ref.Key]; !ok {
						t.Errorf("%s %s env %s: Secret %s has no key %s", w.Kind, w.Metadata.Name, e.Name, ref.Name, ref.Key)
					}
				}
				// Every file a flag names lies under a mounted directory.
				for _, arg := range append(append([]string{}, c.Args...), c.Command...) {
					_, value, ok := strings.Cut(arg, "=")
					if !ok || !strings.HasPrefix(value, "/etc/") {
						continue
					}
					dir := filepath.Dir(value)
					if strings.HasSuffix(arg, "-dags="+value) || strings.HasPrefix(arg, "-dir=") {
						dir = value
					}
					if _, ok := mounts[dir]; !ok {
						t.Errorf("%s %s container %s: %s is under no mounted volume", w.Kind, w.Metadata.Name, c.Name, arg)
					}
				}
			}
			if w == sts {
				data, ok := mounts["/var/lib/daguha/data"]
				if !ok || !claims[data] {
					t.Errorf("the servers' data directory is not on a persistent volume claim")
				}
				if v, ok := flagValue(pod.Containers[0].Args, "-data-dir"); !ok || v != "/var/lib/daguha/data" {
					t.Errorf("the servers' -data-dir %q is not the claim's mount", v)
				}
			}
		}
	})

	t.Run("gpu workers ask for a GPU", func(t *testing.T) {
		var gpu, cpu *object
		for _, w := range workloads(objects) {
			labels, _ := flagValue(w.Spec.Template.Spec.Containers[0].Args, "-labels")
			switch {
			case strings.Contains(labels, "gpu=true"):
				gpu = w
			case w.Kind == "Deployment":
				cpu = w
			}
		}
		if gpu == nil || cpu == nil {
			t.Fatalf("want a gpu and a cpu worker Deployment; gpu %v, cpu %v", gpu != nil, cpu != nil)
		}
		if limit := gpu.Spec.Template.Spec.Containers[0].Resources.Limits["nvidia.com/gpu"]; fmt.Sprint(limit) != "1" {
			t.Errorf("gpu workers' nvidia.com/gpu limit is %v; want 1", limit)
		}
		if _, ok := cpu.Spec.Template.Spec.Containers[0].Resources.Limits["nvidia.com/gpu"]; ok {
			t.Errorf("cpu workers ask for a GPU")
		}
	})
}

func fmtInt(p *int) string {
	if p == nil {
		return "unset"
	}
	return strconv.Itoa(*p)
}

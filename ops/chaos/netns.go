package chaos

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// iptablesPath is where Debian puts iptables; PATH may not hold /usr/sbin.
const iptablesPath = "/usr/sbin/iptables"

// namePrefix starts every namespace, link, rule comment and mount the
// suite makes; the test process's id follows it.
const namePrefix = "dgc"

// leftoverName matches the names the suite makes: prefix, pid, a letter.
var leftoverName = regexp.MustCompile(`^` + namePrefix + `(\d+)[a-z]`)

// Network is a bridge on the host and one network namespace per node,
// each joined to the bridge by a veth pair, on a private /24. The host
// holds the .1 address, so the test reaches every node directly.
// Partitions are iptables rules inside the nodes' namespaces; the host's
// own rules are touched only to let the bridge forward.
type Network struct {
	Name   string // prefix of every name this network made
	Bridge string
	subnet string // "10.X.Y"
	HostIP string

	mu    sync.Mutex
	nodes []*Node
	// blocked holds the directed pairs currently cut: from -> to.
	blocked map[[2]string]bool
}

// Node is one host of the network: a namespace and its address.
type Node struct {
	Name      string
	Namespace string
	IP        string
	hostLink  string
}

// Wrap is the command prefix that runs a program inside the node's
// namespace (ip netns exec execs it: the pid stays the program's).
func (n *Node) Wrap() []string { return []string{"ip", "netns", "exec", n.Namespace} }

// run runs a command and returns its error with its output.
func run(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Usable says why network namespaces and iptables cannot be used here,
// or "" when they can.
func Usable() string {
	if os.Geteuid() != 0 {
		return "the chaos suite needs root (network namespaces, iptables, tmpfs): run the tests as root"
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return "the chaos suite needs ip: install iproute2 (as root: apt-get install iproute2, or make deps)"
	}
	if _, err := os.Stat(iptablesPath); err != nil {
		return "the chaos suite needs " + iptablesPath + ": install iptables (as root: apt-get install iptables, or make deps)"
	}
	probe := fmt.Sprintf("%s%dz-probe", namePrefix, os.Getpid())
	if err := run("ip", "netns", "add", probe); err != nil {
		return "ip netns is not usable: " + err.Error()
	}
	defer run("ip", "netns", "del", probe)
	if err := run("ip", "netns", "exec", probe, iptablesPath, "-S", "INPUT"); err != nil {
		return "iptables is not usable in a network namespace: " + err.Error()
	}
	if err := run(iptablesPath, "-S", "FORWARD"); err != nil {
		return "iptables is not usable: " + err.Error()
	}
	return ""
}

// alive reports whether a process with the id runs.
func alive(pid int) bool {
	return pid == os.Getpid() || !errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}

// stale reports whether name was made by a test process that is gone.
func stale(name string) bool {
	m := leftoverName.FindStringSubmatch(name)
	if m == nil {
		return false
	}
	pid, err := strconv.Atoi(m[1])
	return err == nil && !alive(pid)
}

// SweepLeftovers removes what runs that were killed before their cleanup
// left behind: namespaces, links, host FORWARD rules and tmpfs mounts
// named by a test process that no longer exists. It returns what it
// removed.
func SweepLeftovers() []string {
	var removed []string
	if out, err := exec.Command("ip", "netns", "list").Output(); err == nil {
		for _, line := range strings.Split(string(out), "\n") {
			if fields := strings.Fields(line); len(fields) > 0 && stale(fields[0]) {
				// The processes the dead run started in it outlived it.
				if pids, err := exec.Command("ip", "netns", "pids", fields[0]).Output(); err == nil {
					for _, p := range strings.Fields(string(pids)) {
						if pid, err := strconv.Atoi(p); err == nil {
							_ = syscall.Kill(pid, syscall.SIGKILL)
							removed = append(removed, "process "+p)
						}
					}
				}
				if run("ip", "netns", "del", fields[0]) == nil {
					removed = append(removed, "netns "+fields[0])
				}
			}
		}
	}
	if out, err := exec.Command("ip", "-o", "link", "show").Output(); err == nil {
		for _, line := range strings.Split(string(out), "\n") {
			fields := strings.Fields(line)
			if len(fields) < 2 {
				continue
			}
			name := strings.SplitN(strings.TrimSuffix(fields[1], ":"), "@", 2)[0]
			if stale(name) && run("ip", "link", "del", name) == nil {
				removed = append(removed, "link "+name)
			}
		}
	}
	if out, err := exec.Command(iptablesPath, "-S", "FORWARD").Output(); err == nil {
		comment := regexp.MustCompile(`--comment "?(` + namePrefix + `\d+[a-z])`)
		for _, line := range strings.Split(string(out), "\n") {
			m := comment.FindStringSubmatch(line)
			if m == nil || !stale(m[1]) || !strings.HasPrefix(line, "-A ") {
				continue
			}
			args := strings.Fields(strings.Replace(line, "-A ", "-D ", 1))
			for i := range args {
				args[i] = strings.Trim(args[i], `"`)
			}
			if run(iptablesPath, args...) == nil {
				removed = append(removed, "iptables rule "+m[1])
			}
		}
	}
	if f, err := os.Open("/proc/mounts"); err == nil {
		scanner := bufio.NewScanner(f)
		var mounts []string
		for scanner.Scan() {
			fields := strings.Fields(scanner.Text())
			if len(fields) >= 2 && stale(fields[0]) {
				mounts = append(mounts, fields[1])
			}
		}
		f.Close()
		for _, dir := range mounts {
			if syscall.Unmount(dir, syscall.MNT_DETACH) == nil {
				removed = append(removed, "mount "+dir)
			}
		}
	}
	return removed
}

var networkSeq struct {
	sync.Mutex
	n int
}

// NewNetwork makes the bridge of a new network, on a /24 of 10.0.0.0/8
// that no interface of the host uses.
func NewNetwork() (*Network, error) {
	networkSeq.Lock()
	letter := byte('a' + networkSeq.n%26)
	networkSeq.n++
	networkSeq.Unlock()
	name := fmt.Sprintf("%s%d%c", namePrefix, os.Getpid(), letter)
	subnet, err := freeSubnet()
	if err != nil {
		return nil, err
	}
	n := &Network{Name: name, Bridge: name + "br", subnet: subnet, HostIP: subnet + ".1", blocked: map[[2]string]bool{}}
	steps := [][]string{
		{"ip", "link", "add", n.Bridge, "type", "bridge"},
		{"ip", "addr", "add", n.HostIP + "/24", "dev", n.Bridge},
		{"ip", "link", "set", n.Bridge, "up"},
		// With br_netfilter loaded, bridged frames pass the host's FORWARD
		// chain, whose policy may be DROP (Docker sets it so).
		{iptablesPath, "-I", "FORWARD", "-i", n.Bridge, "-o", n.Bridge, "-j", "ACCEPT", "-m", "comment", "--comment", name},
	}
	for _, step := range steps {
		if err := run(step[0], step[1:]...); err != nil {
			n.Close()
			return nil, err
		}
	}
	return n, nil
}

// freeSubnet picks 10.250-253.X.0/24 not used by any host address; the
// process id chooses where the search starts, so parallel runs spread.
func freeSubnet() (string, error) {
	out, err := exec.Command("ip", "-o", "-4", "addr", "show").Output()
	if err != nil {
		return "", fmt.Errorf("list host addresses: %w", err)
	}
	start := os.Getpid() % 1000
	for i := 0; i < 1000; i++ {
		k := (start + i) % 1000
		subnet := fmt.Sprintf("10.%d.%d", 250+k/250, k%250+1)
		if !strings.Contains(string(out), " "+subnet+".") {
			return subnet, nil
		}
	}
	return "", errors.New("no free /24 in 10.250.0.0/14")
}

// AddNode makes a namespace for a node, with loopback up and a veth pair
// to the bridge.
func (n *Network) AddNode(name string) (*Node, error) {
	n.mu.Lock()
	index := len(n.nodes) + 2
	n.mu.Unlock()
	node := &Node{
		Name:      name,
		Namespace: fmt.Sprintf("%s-%s", n.Name, name),
		IP:        fmt.Sprintf("%s.%d", n.subnet, index),
		hostLink:  fmt.Sprintf("%sv%d", n.Name, index),
	}
	peer := fmt.Sprintf("%sp%d", n.Name, index)
	steps := [][]string{
		{"ip", "netns", "add", node.Namespace},
		{"ip", "netns", "exec", node.Namespace, "ip", "link", "set", "lo", "up"},
		{"ip", "link", "add", node.hostLink, "type", "veth", "peer", "name", peer},
		{"ip", "link", "set", peer, "netns", node.Namespace},
		{"ip", "netns", "exec", node.Namespace, "ip", "link", "set", peer, "name", "eth0"},
		{"ip", "netns", "exec", node.Namespace, "ip", "addr", "add", node.IP + "/24", "dev", "eth0"},
		{"ip", "netns", "exec", node.Namespace, "ip", "link", "set", "eth0", "up"},
		{"ip", "link", "set", node.hostLink, "master", n.Bridge},
		{"ip", "link", "set", node.hostLink, "up"},
	}
	for _, step := range steps {
		if err := run(step[0], step[1:]...); err != nil {
			run("ip", "netns", "del", node.Namespace)
			run("ip", "link", "del", node.hostLink)
			return nil, fmt.Errorf("node %s: %w", name, err)
		}
	}
	n.mu.Lock()
	n.nodes = append(n.nodes, node)
	n.mu.Unlock()
	return node, nil
}

// Block drops every packet from one node to another (one way): a rule in
// the receiver's namespace.
func (n *Network) Block(from, to *Node) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	key := [2]string{from.Name, to.Name}
	if n.blocked[key] {
		return nil
	}
	if err := run("ip", "netns", "exec", to.Namespace, iptablesPath, "-A", "INPUT", "-s", from.IP, "-j", "DROP"); err != nil {
		return err
	}
	n.blocked[key] = true
	return nil
}

// Isolate cuts node off from each of others, both ways.
func (n *Network) Isolate(node *Node, others ...*Node) error {
	for _, other := range others {
		if other == node {
			continue
		}
		if err := n.Block(node, other); err != nil {
			return err
		}
		if err := n.Block(other, node); err != nil {
			return err
		}
	}
	return nil
}

// Heal removes every partition.
func (n *Network) Heal() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	var errs []error
	for _, node := range n.nodes {
		if err := run("ip", "netns", "exec", node.Namespace, iptablesPath, "-F", "INPUT"); err != nil {
			errs = append(errs, err)
		}
	}
	n.blocked = map[[2]string]bool{}
	return errors.Join(errs...)
}

// Close removes the namespaces, links and the host rule. The nodes'
// processes must have ended first.
func (n *Network) Close() error {
	n.mu.Lock()
	nodes := n.nodes
	n.nodes = nil
	n.mu.Unlock()
	var errs []error
	for _, node := range nodes {
		if err := run("ip", "netns", "del", node.Namespace); err != nil {
			errs = append(errs, err)
		}
		// Deleting the namespace deletes the pair; this is for a pair
		// whose peer never moved.
		_ = exec.Command("ip", "link", "del", node.hostLink).Run()
	}
	_ = exec.Command(iptablesPath, "-D", "FORWARD", "-i", n.Bridge, "-o", n.Bridge, "-j", "ACCEPT", "-m", "comment", "--comment", n.Name).Run()
	if err := exec.Command("ip", "link", "del", n.Bridge).Run(); err != nil {
		errs = append(errs, fmt.Errorf("delete bridge %s: %w", n.Bridge, err))
	}
	return errors.Join(errs...)
}

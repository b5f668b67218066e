package spec

import (
	"slices"
	"strings"
)

// Warning is something in the files that foldup does not act on, with
// where it is written, or a choice it made for the user.
type Warning struct {
	Pos Pos
	Key string // dotted path
	Msg string
}

func (w Warning) String() string {
	if s := w.Pos.String(); s != "" {
		return s + ": " + w.Key + ": " + w.Msg
	}
	return w.Key + ": " + w.Msg
}

// SupportedServiceKeys are the Compose service keys foldup acts on (the
// runtime's conversion to the engine's request, the planner's networks
// and ports, spec's own profiles and dependencies). Any other key in a
// service is a warning (Project.Warnings), never silently dropped.
var SupportedServiceKeys = map[string]bool{
	"build": true, "cap_add": true, "cap_drop": true, "command": true, "configs": true,
	"container_name": true, "cpu_shares": true, "cpus": true, "cpuset": true, "depends_on": true,
	"deploy": true, "devices": true, "dns": true, "dns_opt": true, "dns_search": true,
	"domainname": true, "entrypoint": true, "env_file": true, "environment": true, "expose": true,
	"extends": true, "extra_hosts": true, "group_add": true, "healthcheck": true, "hostname": true,
	"image": true, "init": true, "ipc": true, "labels": true, "logging": true, "mac_address": true,
	"mem_limit": true, "mem_reservation": true, "network_mode": true, "networks": true,
	"oom_score_adj": true, "pid": true, "pids_limit": true, "platform": true, "ports": true,
	"privileged": true, "profiles": true, "pull_policy": true, "read_only": true, "restart": true,
	"scale": true, "secrets": true, "security_opt": true, "shm_size": true, "stdin_open": true,
	"stop_grace_period": true, "stop_signal": true, "sysctls": true, "tmpfs": true, "tty": true,
	"ulimits": true, "user": true, "userns_mode": true, "uts": true, "volumes": true,
	"volumes_from": true, "working_dir": true,
	"annotations": true, "blkio_config": true, "cgroup": true, "cgroup_parent": true,
	"cpu_period": true, "cpu_quota": true, "cpu_rt_period": true, "cpu_rt_runtime": true,
	"device_cgroup_rules": true, "gpus": true,
	"mem_swappiness": true, "memswap_limit": true, "oom_kill_disable": true, "runtime": true,
	"storage_opt": true,
}

// unsupportedWhy says why foldup does not act on a Compose service key,
// where there is more to say than that it does not.
var unsupportedWhy = map[string]string{
	"cpu_count":          "Windows containers only; ignored",
	"cpu_percent":        "Windows containers only; ignored",
	"credential_spec":    "Windows containers only; ignored",
	"isolation":          "Windows containers only; ignored",
	"links":              "foldup's DNS resolves every member by its name and aliases; ignored",
	"external_links":     "foldup's DNS resolves every member by its name and aliases; ignored",
	"develop":            "docker compose watch's; foldup has no watch; ignored",
	"post_start":         "docker compose's lifecycle hooks are not foldup's; ignored",
	"pre_stop":           "docker compose's lifecycle hooks are not foldup's; ignored",
	"attach":             "foldup up attaches to every member's output; ignored",
	"provider":           "docker compose's provider services are not foldup's; ignored",
	"models":             "docker compose's models are not foldup's; ignored",
	"use_api_socket":     "foldup does not hand containers the engine's socket; mount it as a volume; ignored",
	"pull_refresh_after": "foldup pulls by pull_policy only; ignored",
	"umask":              "not in the engine's API; ignored",
	"label_file":         "not supported by foldup: write the labels under labels:; ignored",
}

// Warnings lists, for each active service, the keys foldup does not act
// on, where each is written:
//
//	foldup.yaml:24:5: services.app.blkio_config: not supported by foldup; ignored
func (p *Project) Warnings() []Warning {
	var out []Warning
	for _, name := range p.ServiceNames() {
		for _, k := range p.Keys("services", name) {
			if SupportedServiceKeys[k] || strings.HasPrefix(k, "x-") {
				continue
			}
			msg := unsupportedWhy[k]
			if msg == "" {
				msg = "not supported by foldup; ignored"
			}
			out = append(out, Warning{
				Pos: p.LocateKey("services", name, k),
				Key: "services." + name + "." + k,
				Msg: msg,
			})
		}
	}
	return slices.Clip(out)
}

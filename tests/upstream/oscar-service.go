/*
Copyright (C) GRyCAP - I3M - UPV

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/

package types

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/goccy/go-yaml"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

const (
	// ContainerName name of the service container
	ContainerName = "oscar-container"

	// VolumeName name of the volume for mounting the OSCAR PVC
	VolumeName = "oscar-volume"

	// VolumePath path to mount the OSCAR PVC
	VolumePath = "/oscar/bin"

	// AlpineDirectory name of the Alpine binary directory
	AlpineDirectory = "alpine"

	// ConfigVolumeName name of the volume for mounting the service configMap
	ConfigVolumeName = "oscar-config"

	// ConfigPath path to mount the service configMap
	ConfigPath = "/oscar/config"

	// FDLFileName name of the FDL file to be stored in the service's configMap
	FDLFileName = "function_config.yaml"

	// ScriptFileName name of the user script file to be stored in the service's configMap
	ScriptFileName = "script.sh"

	// PVCName name of the OSCAR PVC
	PVCName = "oscar-pvc"

	// WatchdogName name of the OpenFaaS watchdog binary
	WatchdogName = "fwatchdog"

	// WatchdogProcess name of the environment variable used by the watchdog to handle requests
	WatchdogProcess = "fprocess"

	// RefreshTokenSecretKey secret key used for federation refresh tokens
	RefreshTokenSecretKey = "refresh_token"

	// RefreshTokenSecretSuffix suffix for per-service refresh token secrets
	RefreshTokenSecretSuffix = "refresh-token"

	// SupervisorName name of the FaaS Supervisor binary
	SupervisorName = "supervisor"

	// ServiceLabel label for deploying services in all backs
	ServiceLabel = "oscar_service"

	// OscarUserServiceLabel marker label applied to all pods and jobs deployed
	// in user namespaces, used to distinguish them from cluster-level resources.
	OscarUserServiceLabel = "oscar.grycap/user-service"

	// ManagedVolumeLabel marks PVCs created and managed as OSCAR volumes.
	ManagedVolumeLabel = "oscar.grycap/managed-volume"

	// ManagedVolumeNameLabel stores the logical OSCAR volume name on the backing PVC.
	ManagedVolumeNameLabel = "oscar.grycap/volume-name"

	// ManagedVolumeCreationModeLabel stores whether the volume was created from a service or the API.
	ManagedVolumeCreationModeLabel = "oscar.grycap/volume-creation-mode"

	// ManagedVolumeCreatedByServiceLabel stores the creator service for service-created volumes.
	ManagedVolumeCreatedByServiceLabel = "oscar.grycap/volume-created-by-service"

	// ManagedVolumeLifecyclePolicyLabel stores the lifecycle policy for service-created volumes.
	ManagedVolumeLifecyclePolicyLabel = "oscar.grycap/volume-lifecycle-policy"

	// ServiceVolumeName name for the managed volume mount in pod specs.
	ServiceVolumeName = "service-volume"

	// EventVariable name used by the environment variable where events are stored
	EventVariable = "EVENT"

	// JobUUIDVariable name used by the environment variable of the job UUID
	JobUUIDVariable = "JOB_UUID"

	// OscarServiceNameEnvVar exposes the OSCAR service name inside the container.
	OscarServiceNameEnvVar = "OSCAR_SERVICE_NAME"

	// OscarServiceTokenEnvVar exposes the OSCAR service token inside the container.
	OscarServiceTokenEnvVar = "OSCAR_SERVICE_TOKEN"

	// OscarServiceBasePathEnvVar exposes the OSCAR service base path inside the container.
	OscarServiceBasePathEnvVar = "OSCAR_SERVICE_BASE_PATH"

	// OpenfaasZeroScalingLabel label to enable zero scaling in OpenFaaS functions
	//OpenfaasZeroScalingLabel = "com.openfaas.scale.zero"

	// YunikornApplicationIDLabel label to define the Yunikorn's application ID
	YunikornApplicationIDLabel = "applicationId"

	// YunikornQueueLabel label to define the Yunikorn's queue
	YunikornQueueLabel = "queue"

	// YunikornOscarQueue name of the Yunikorn's queue used for OSCAR services
	YunikornOscarQueue = "oscar-queue"

	// YunikornRootQueue name of the root Yunikorn's queue
	YunikornRootQueue = "root"

	// YunikornDefaultPartition name of the default Yunikorn partition
	YunikornDefaultPartition = "default"

	// KueueOwnerLabel label used to tag Kueue objects owned by OSCAR
	KueueOwnerLabel = "oscar.grycap/owner"

	// KnativeVisibilityLabel name of the knative visibility label
	KnativeVisibilityLabel = "networking.knative.dev/visibility"

	// KnativeClusterLocalValue cluster-local value for the visibility label
	KnativeClusterLocalValue = "cluster-local"

	// KnativeMinScaleAnnotation annotation key to set the minimum number of replicas for a Knative service
	KnativeMinScaleAnnotation = "autoscaling.knative.dev/min-scale"

	// KnativeMaxScaleAnnotation annotation key to set the maximum number of replicas for a Knative service
	KnativeMaxScaleAnnotation = "autoscaling.knative.dev/max-scale"

	// ReSchedulerLabelKey label key to enable/disable the ReScheduler
	ReSchedulerLabelKey = "oscar_rescheduler"

	IsolationLevelUser = "USER"

	IsolationLevelService = "SERVICE"

	DefaultOwner = "cluster_admin"

	JobOwnerExecutionAnnotation = "oscar.grycap/job-owner"

	OriginClusterAnnotation    = "oscar.grycap/origin-cluster"
	OriginServiceAnnotation    = "oscar.grycap/origin-service"
	FederationWorkerAnnotation = "oscar.grycap/federation-worker"
)

// YAMLMarshal package-level yaml marshal function
var YAMLMarshal = yaml.Marshal

// Service represents an OSCAR service following the SCAR Function Definition Language
type Service struct {
	// Name the name of the service
	Name string `json:"name" binding:"required,max=39,min=1"`

	// ClusterID identifier for the current cluster, used to specify the cluster's StorageProvider in job delegations
	// Optional. (default: ""). OSCAR-CLI sets it using the ClusterID from the FDL
	ClusterID string `json:"cluster_id"`

	// Memory memory limit for the service following the kubernetes format
	// https://kubernetes.io/docs/concepts/configuration/manage-compute-resources-container/#meaning-of-memory
	// Optional. (default: 256Mi)
	Memory string `json:"memory"`

	// CPU cpu limit for the service following the kubernetes format
	// https://kubernetes.io/docs/concepts/configuration/manage-compute-resources-container/#meaning-of-cpu
	// Optional. (default: 0.2)
	CPU string `json:"cpu"`

	// TotalMemory limit for the memory used by all the service's jobs running simultaneously
	// Apache YuniKorn scheduler is required to work
	// Same format as Memory, but internally translated to MB (integer)
	// Optional. (default: "")
	TotalMemory string `json:"total_memory"`

	// TotalCPU limit for the virtual CPUs used by all the service's jobs running simultaneously
	// Apache YuniKorn scheduler is required to work
	// Same format as CPU, but internally translated to millicores (integer)
	// Optional. (default: "")
	TotalCPU string `json:"total_cpu"`

	// EphemeralStorageRequest request size for ephemeral storage following the kubernetes format
	// https://kubernetes.io/docs/concepts/configuration/manage-compute-resources-container/#meaning-of-ephemeral-storage
	// Optional. (default: "")
	EphemeralStorageRequest string `json:"ephemeral_storage_request"`

	// EnableGPU parameter to request gpu usage in service's executions (synchronous and asynchronous)
	// Optional. (default: false)
	EnableGPU bool `json:"enable_gpu"`

	// EnableSGX parameter to use the SCONE k8s plugin
	// Optional. (default: false)
	EnableSGX bool `json:"enable_sgx"`

	// ImagePrefetch parameter to enable the image cache functionality
	// Optional. (default: false)
	ImagePrefetch bool `json:"image_prefetch"`

	// Synchronous struct to configure specific sync parameters
	// Only Knative ServerlessBackend applies this settings
	// Optional.
	Synchronous struct {
		// MinScale minimum number of active replicas (pods) for the service
		// Optional. (default: 0)
		MinScale int `json:"min_scale"`
		// MaxScale maximum number of active replicas (pods) for the service
		// Optional. (default: 0 [Unlimited])
		MaxScale int `json:"max_scale"`
	} `json:"synchronous"`

	// Federation defines a service federation across clusters
	// Optional
	Federation *Federation `json:"federation,omitempty"`

	// LogLevel log level for the FaaS Supervisor
	// Optional. (default: INFO)
	LogLevel string `json:"log_level"`

	// Image Docker image for the service
	Image string `json:"image" binding:"required"`

	// Alpine parameter to set if image is based on Alpine
	// A custom release of faas-supervisor will be used
	// Optional. (default: false)
	Alpine bool `json:"alpine"`

	// Token token for sync and async invocations
	// Read only. This field is automatically generated by OSCAR
	Token string `json:"token"`

	// A parameter to disable the download of input files by the FaaS Supervisor
	// Optional. (default: false)
	FileStageIn bool `json:"file_stage_in"`

	// Input StorageIOConfig slice with the input service configuration
	// Optional
	Input []StorageIOConfig `json:"input"`

	// Output StorageIOConfig slice with the output service configuration
	// Optional
	Output []StorageIOConfig `json:"output"`

	// Script the user script to execute when the service is invoked
	Script string `json:"script,omitempty" binding:"required"`

	// ImagePullSecrets list of Kubernetes secrets to login to a private registry
	// Optional
	ImagePullSecrets []string `json:"image_pull_secrets,omitempty"`

	Expose Expose `json:"expose"`

	// The user-defined environment variables assigned to the service
	// Optional
	Environment struct {
		Vars    map[string]string `json:"variables"`
		Secrets map[string]string `json:"secrets"`
	} `json:"environment"`

	// Annotations user-defined Kubernetes annotations to be set in job's definition
	// https://kubernetes.io/docs/concepts/overview/working-with-objects/annotations/
	// Optional
	Annotations map[string]string `json:"annotations"`

	// Parameter to specify the VO from the user creating the service
	// Optional
	VO string `json:"vo"`

	// Labels user-defined Kubernetes labels to be set in job's definition
	// https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/
	// Optional
	Labels map[string]string `json:"labels"`

	// StorageProviders configuration for the storage providers used by the service
	// Optional. (default: MinIOProvider["default"] with the server's config credentials)
	StorageProviders *StorageProviders `json:"storage_providers,omitempty"`

	// Clusters configuration for the OSCAR clusters that can be used as service's replicas
	// Optional
	Clusters map[string]Cluster `json:"clusters,omitempty"`

	// EGI UID of the user that created the service
	// If the service is created through basic auth the default owner is "cluster_admin"
	Owner string `json:"owner"`

	// Namespace where the service resources are deployed. Internal use only, not part of FDL.
	Namespace string `json:"namespace,omitempty" yaml:"-"`

	InterLinkNodeName string `json:"interlink_node_name"`

	// Visibility sets which users will be able to interact with the service
	// "private" The default state of the service, which means only the owner of the same can interact with it
	// "public"  Every user can see the service and its buckets
	// "restricted" A list of users, set on the "allowed_users" variable are able to interact with the service
	Visibility string `json:"visibility"`

	// AllowedUsers list of EGI UID's identifying the users that will have visibility of the service and its MinIO storage provider
	// Optional - only used if Visibility is set to "restricted"
	AllowedUsers []string `json:"allowed_users"`

	// IsolationLevel level of isolation for the buckets of the service (default:service)
	IsolationLevel string `json:"isolation_level" default:"SERVICE"`

	// BucketList autogenerated list of private buckets based on the allowed_users of the service
	BucketList []string `json:"bucket_list"`

	// Mount configuration to create a storage provider as a volume inside the service container
	// Optional
	Mount StorageIOConfig `json:"mount"`

	// Volume configuration to create or attach a managed persistent volume.
	// Optional
	Volume *ServiceVolumeConfig `json:"volume,omitempty"`

	// VolumeStatus exposes basic volume state information in API responses.
	// Internal/API use only, not part of FDL.
	VolumeStatus ServiceVolumeStatus `json:"volume_status,omitempty" yaml:"-"`

	// Deployment exposes an optional deployment summary in list/read API responses.
	// Internal/API use only, not part of FDL.
	Deployment *ServiceDeploymentSummary `json:"deployment,omitempty" yaml:"-"`

	// Kserve configuration to deploy the service using KServe InferenceService CRD
	Kserve *Kserve `json:"kserve,omitempty"`
}

type Kserve struct {
	// Type the type of KServe service to deploy
	// Required. Set the type of KServe service, either "inference" for a standard InferenceService
	// or "llm_inference" for an LLMInferenceService
	Type string `json:"type,omitempty" default:"inference"`

	// Inference configuration for KServe InferenceService.
	// It is required when Type is set to "inference"
	Inference *KserveInference `json:"inference,omitempty"`

	// LLMInference configuration for KServe LLMInferenceService.
	// It is required when Type is set to "llm_inference"
	LLMInference *KserveLLMInference `json:"llm_inference,omitempty"`

	// StorageUri the URI of the model storage for KServe
	// Required. It should follow the format expected by KServe, for example:
	StorageUri string `json:"storage_uri"`

	// Can be used to specify the protocol version for KServe (e.g., "v1", "v2").
	// Optional. (default: "v1")
	APIVersion string `json:"api_version,omitempty" default:"v1"`

	// MinScale minimum number of active replicas (pods) for the service
	// Optional. (default: 0)
	MinScale int32 `json:"min_scale,omitempty" default:"0"`

	// MaxScale maximum number of active replicas (pods) for the service
	// Optional. (default: 1)
	MaxScale int32 `json:"max_scale,omitempty" default:"1"`

	// CPU cpu limit for the service following the kubernetes format
	// https://kubernetes.io/docs/concepts/configuration/manage-compute-resources-container/#meaning-of-cpu
	// Optional. (default: 0.2)
	CPU string `json:"cpu" default:"0.2"`

	// Memory memory limit for the service following the kubernetes format
	// https://kubernetes.io/docs/concepts/configuration/manage-compute-resources-container/#meaning-of-memory
	// Optional. (default: 256Mi)
	Memory string `json:"memory" default:"256Mi"`

	// Args command-line arguments to be passed to the container
	// Optional
	Args []string `json:"args,omitempty"`

	// Environment variables to be passed to the container
	// Optional
	Env map[string]string `json:"env,omitempty"`

	// EnableGPU parameter to request gpu usage in KServe InferenceService
	// Optional. (default: false)
	EnableGPU bool `json:"enable_gpu,omitempty" default:"false"`

	// SetAuth parameter to set the authentication for the KServe InferenceService
	// Optional. (default: true)
	SetAuth bool `json:"set_auth,omitempty" default:"true"`
}

// UnmarshalJSON sets KServe defaults for fields that may be omitted in API requests.
func (k *Kserve) UnmarshalJSON(data []byte) error {
	type Alias Kserve

	// Set default values for optional fields
	aux := Alias{
		APIVersion: "v1",
		CPU:        "0.2",
		Memory:     "256Mi",
		SetAuth:    true,
		MinScale:   0,
		MaxScale:   1,
		EnableGPU:  false,
	}

	if err := json.Unmarshal(data, &aux); err != nil {
		return err
	}
	// Validate required fields
	if strings.TrimSpace(aux.StorageUri) == "" {
		return fmt.Errorf("Kserve StorageUri is required")
	}
	if strings.TrimSpace(aux.Type) == "" {
		return fmt.Errorf("Kserve Type is required")
	}

	*k = Kserve(aux)
	return nil
}

type KserveInference struct {
	// ModelFormat the model format to use for KServe InferenceService
	// ("onnx", "sklearn", "xgboost", "pytorch", "tensorflow", "triton", "huggingface").
	ModelFormat string `json:"model_format,omitempty"`
	// Runtime the KServe runtime to use
	// Optional.
	Runtime string `json:"runtime,omitempty"`
}

func (k *KserveInference) UnmarshalJSON(data []byte) error {
	type Alias KserveInference

	aux := Alias{}

	if err := json.Unmarshal(data, &aux); err != nil {
		return err
	}

	// ModelFormat is required for KServe InferenceService
	if strings.TrimSpace(aux.ModelFormat) == "" {
		return fmt.Errorf("Kserve Inference ModelFormat is required")
	}

	*k = KserveInference(aux)
	return nil
}

type KserveLLMInference struct {
	// At the moment only supported for LLMInferenceService,
	// the runtime image to use for KServe when IsLLM is true
	// Optional. (default: a custom image based on vLLM for CPU and another one with GPU support)
	RuntimeImage string `json:"runtime_image,omitempty"`
}

// ServiceVolumeConfig stores the requested size and mount path for a managed volume.
type ServiceVolumeConfig struct {
	// Name is the logical volume name. It is optional for service-created volumes.
	Name string `json:"name,omitempty"`
	// Size requested volume size using Kubernetes quantity format (for example 1Gi).
	Size string `json:"size"`
	// MountPath absolute path inside the service container where the volume is mounted.
	MountPath string `json:"mount_path"`
	// LifecyclePolicy controls whether a service-created volume is deleted with the creator service.
	LifecyclePolicy string `json:"lifecycle_policy,omitempty"`
}

// ServiceVolumeStatus contains a minimal service-side view of an attached volume.
type ServiceVolumeStatus struct {
	Enabled bool   `json:"enabled"`
	Name    string `json:"name,omitempty"`
	Phase   string `json:"phase,omitempty"`
	Error   string `json:"error,omitempty"`
}

type Expose struct {
	MinScale       int32   `json:"min_scale" default:"1"`
	MaxScale       int32   `json:"max_scale" default:"10"`
	APIPort        []int   `json:"api_port,omitempty" `
	CpuThreshold   int32   `json:"cpu_threshold" default:"80" `
	RewriteTarget  bool    `json:"rewrite_target" default:"false" `
	NodePort       []int32 `json:"nodePort,omitempty" `
	DefaultCommand bool    `json:"default_command" `
	SetAuth        bool    `json:"set_auth" `
	AuthType       string  `json:"auth_type,omitempty" default:"basic" `
	HealthPath     string  `json:"health_path" default:"/" `
	ProbeMode      string  `json:"probe_mode,omitempty" default:"legacy" `
}

// ToPodSpec returns a k8s podSpec from the Service
func (service *Service) ToPodSpec(cfg *Config) (*v1.PodSpec, error) {
	resources, err := CreateResources(service)
	if err != nil {
		return nil, err
	}
	disableServiceAccountTokenAutomount := false

	enableServiceLinks := false
	podSpec := &v1.PodSpec{
		AutomountServiceAccountToken: &disableServiceAccountTokenAutomount,
		ImagePullSecrets:             SetImagePullSecrets(service.ImagePullSecrets),
		EnableServiceLinks:           &enableServiceLinks,
		Containers: []v1.Container{
			{
				Name:            ContainerName,
				Image:           service.Image,
				ImagePullPolicy: v1.PullAlways,
				Env:             ConvertEnvVars(service.Environment.Vars),
				VolumeMounts: []v1.VolumeMount{
					{
						Name:      ConfigVolumeName,
						ReadOnly:  true,
						MountPath: ConfigPath,
					},
				},
				Command:   []string{fmt.Sprintf("%s/%s", VolumePath, WatchdogName)},
				Resources: resources,
			},
		},
		Volumes: []v1.Volume{
			{
				Name: ConfigVolumeName,
				VolumeSource: v1.VolumeSource{
					ConfigMap: &v1.ConfigMapVolumeSource{
						LocalObjectReference: v1.LocalObjectReference{
							Name: service.Name,
						},
					},
				},
			},
		},
	}
	if IsInterLinkService(service, cfg) {
		// Add specs of InterLink
		SetInterlinkService(podSpec)
	} else {
		// Add specs
		volumeMount := v1.VolumeMount{
			Name:      VolumeName,
			ReadOnly:  true,
			MountPath: VolumePath,
		}
		volume := v1.Volume{

			Name: VolumeName,
			VolumeSource: v1.VolumeSource{
				PersistentVolumeClaim: &v1.PersistentVolumeClaimVolumeSource{
					ClaimName: PVCName,
				},
			},
		}
		podSpec.Containers[0].VolumeMounts = append(podSpec.Containers[0].VolumeMounts, volumeMount)
		podSpec.Volumes = append(podSpec.Volumes, volume)
	}

	if service.Volume != nil {
		podSpec.Containers[0].VolumeMounts = append(podSpec.Containers[0].VolumeMounts, v1.VolumeMount{
			Name:      ServiceVolumeName,
			MountPath: service.Volume.MountPath,
		})
		podSpec.Volumes = append(podSpec.Volumes, v1.Volume{
			Name: ServiceVolumeName,
			VolumeSource: v1.VolumeSource{
				PersistentVolumeClaim: &v1.PersistentVolumeClaimVolumeSource{
					ClaimName: service.GetVolumePVCName(),
				},
			},
		})
	}

	// Add OSCAR-managed environment variables
	addServiceMetadataEnvVars(podSpec, service)

	// Add the required environment variables for the watchdog
	addWatchdogEnvVars(podSpec, cfg, service)

	if service.EnableSGX {
		SetSecurityContext(podSpec)
	}

	return podSpec, nil
}

// ToYAML returns the service as a Function Definition Language YAML
func (service Service) ToYAML() (string, error) {
	bytes, err := YAMLMarshal(service)
	if err != nil {
		return "", err
	}
	return string(bytes), nil
}

// GetMinIOWebhookARN returns the MinIO's notify_webhook ARN for the specified function
func (service *Service) GetMinIOWebhookARN() string {
	return fmt.Sprintf("arn:minio:sqs:%s:%s:webhook", service.StorageProviders.MinIO[DefaultProvider].Region, service.Name)
}

func ConvertEnvVars(vars map[string]string) []v1.EnvVar {
	envVars := []v1.EnvVar{}
	for k, v := range vars {
		envVars = append(envVars, v1.EnvVar{
			Name:  k,
			Value: v,
		})
	}
	return envVars
}

func ConvertSecretsEnvVars(secretName string) []v1.EnvFromSource {
	return []v1.EnvFromSource{
		{
			SecretRef: &v1.SecretEnvSource{
				LocalObjectReference: v1.LocalObjectReference{
					Name: secretName,
				},
			},
		},
	}
}

func SetImagePullSecrets(secrets []string) []v1.LocalObjectReference {
	objects := []v1.LocalObjectReference{}
	for _, s := range secrets {
		objects = append(objects, v1.LocalObjectReference{
			Name: s,
		})
	}
	return objects
}

func SetSecurityContext(podSpec *v1.PodSpec) {
	ctx := v1.SecurityContext{
		Capabilities: &v1.Capabilities{
			Add: []v1.Capability{"SYS_RAWIO"},
		},
	}

	podSpec.Containers[0].SecurityContext = &ctx
}

func CreateResources(service *Service) (v1.ResourceRequirements, error) {
	resources := v1.ResourceRequirements{
		Limits:   v1.ResourceList{},
		Requests: v1.ResourceList{},
	}

	if len(service.CPU) > 0 {
		cpu, err := resource.ParseQuantity(service.CPU)
		if err != nil {
			return resources, err
		}
		resources.Limits[v1.ResourceCPU] = cpu
	}

	if len(service.Memory) > 0 {
		memory, err := resource.ParseQuantity(service.Memory)
		if err != nil {
			return resources, err
		}
		resources.Limits[v1.ResourceMemory] = memory
	}

	// Include ephemeral storage request so Kueue can enforce per-user quotas.
	if len(service.EphemeralStorageRequest) > 0 {
		ephemeral, err := resource.ParseQuantity(service.EphemeralStorageRequest)
		if err != nil {
			return resources, err
		}
		resources.Requests[v1.ResourceEphemeralStorage] = ephemeral
	}

	if service.EnableGPU {
		gpu, err := resource.ParseQuantity("1")
		if err != nil {
			return resources, err
		}
		resources.Limits["nvidia.com/gpu"] = gpu
	}

	if service.EnableSGX {
		sgx, err := resource.ParseQuantity("1")
		if err != nil {
			return resources, err
		}
		resources.Limits["sgx.intel.com/enclave"] = sgx
	}

	return resources, nil
}

func addWatchdogEnvVars(p *v1.PodSpec, cfg *Config, service *Service) {
	requiredEnvVars := []v1.EnvVar{
		// Use FaaS Supervisor to handle requests
		{
			Name:  WatchdogProcess,
			Value: service.GetSupervisorPath(),
		},
		// Other OpenFaaS Watchdog options
		// https://github.com/openfaas/classic-watchdog
		{
			Name:  "max_inflight",
			Value: strconv.Itoa(cfg.WatchdogMaxInflight),
		},
		{
			Name:  "write_debug",
			Value: strconv.FormatBool(cfg.WatchdogWriteDebug),
		},
		{
			Name:  "exec_timeout",
			Value: strconv.Itoa(cfg.WatchdogExecTimeout),
		},
		{
			Name:  "read_timeout",
			Value: strconv.Itoa(cfg.WatchdogReadTimeout),
		},
		{
			Name:  "write_timeout",
			Value: strconv.Itoa(cfg.WatchdogWriteTimeout),
		},
		{
			Name:  "healthcheck_interval",
			Value: strconv.Itoa(cfg.WatchdogHealthCheckInterval),
		},
	}

	for i, cont := range p.Containers {
		if cont.Name == ContainerName {
			p.Containers[i].Env = append(p.Containers[i].Env, requiredEnvVars...)
		}
	}
}

func addServiceMetadataEnvVars(p *v1.PodSpec, service *Service) {
	requiredEnvVars := []v1.EnvVar{
		{
			Name:  OscarServiceNameEnvVar,
			Value: service.Name,
		},
		{
			Name:  OscarServiceTokenEnvVar,
			Value: service.Token,
		},
		{
			Name:  OscarServiceBasePathEnvVar,
			Value: service.GetExposedBasePath(),
		},
	}

	for i, cont := range p.Containers {
		if cont.Name == ContainerName {
			p.Containers[i].Env = append(p.Containers[i].Env, requiredEnvVars...)
		}
	}
}

// GetSupervisorPath returns the appropriate supervisor path
func (service *Service) GetSupervisorPath() string {
	if service.Alpine {
		return fmt.Sprintf("%s/%s/%s", VolumePath, AlpineDirectory, SupervisorName)
	}
	return fmt.Sprintf("%s/%s", VolumePath, SupervisorName)
}

// HasFederationMembers checks if the service defines federation members.
func (service *Service) HasFederationMembers() bool {
	return service.Federation != nil && len(service.Federation.Members) > 0

}

// GetExposedBasePath returns the OSCAR exposed-service base path or an empty string.
func (service *Service) GetExposedBasePath() string {

	if service == nil || len(service.Expose.APIPort) == 0 {
		return ""
	}
	return fmt.Sprintf("/system/services/%s/exposed", service.Name)
}

// GetVolumeName returns the logical managed volume name used by the service.
func (service *Service) GetVolumeName() string {
	if service == nil {
		return ""
	}
	if service.Volume == nil {
		return service.Name
	}
	if strings.TrimSpace(service.Volume.Name) != "" {
		return strings.TrimSpace(service.Volume.Name)
	}
	return service.Name
}

// GetVolumePVCName returns the backing PVC name for the managed volume.
func (service *Service) GetVolumePVCName() string {
	return service.GetVolumeName()
}

// CreatesManagedVolume reports whether the service requests creation of a new managed volume.
func (service *Service) CreatesManagedVolume() bool {
	return service != nil && service.Volume != nil && strings.TrimSpace(service.Volume.Size) != ""
}

// UsesManagedVolume reports whether the service attaches a managed volume.
func (service *Service) UsesManagedVolume() bool {
	return service != nil && service.Volume != nil
}

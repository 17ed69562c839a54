variable "region" {
  description = "AWS region of the bucket and the cluster."
  type        = string
  default     = "eu-west-1"
}

variable "bucket" {
  description = "The metric lake bucket (created here)."
  type        = string
}

variable "prefix" {
  description = "The lake root inside the bucket, no slashes at the ends (s3://bucket/prefix)."
  type        = string
  default     = "lake"

  validation {
    condition     = !startswith(var.prefix, "/") && !endswith(var.prefix, "/")
    error_message = "prefix must not start or end with a slash, e.g. \"prod/lake\"."
  }

  # "" would render "${bucket}//*" in deploy/iam/*.json and "/v1/..." lifecycle filters: nothing
  # would match. A lake at the bucket root is filled by hand (deploy/iam/README.md).
  validation {
    condition     = var.prefix != ""
    error_message = "prefix must not be empty: this module puts the lake under a prefix, e.g. \"lake\"; for a lake at the bucket root fill deploy/iam/*.json as deploy/iam/README.md says."
  }
}

variable "kms_key_arn" {
  description = "The customer-managed KMS key for SSE-KMS on the lake."
  type        = string
}

variable "eks_oidc_provider_arn" {
  description = "IAM OIDC provider of the EKS cluster (IRSA), arn:aws:iam::ACCOUNT:oidc-provider/oidc.eks.REGION.amazonaws.com/id/ID."
  type        = string
}

variable "eks_oidc_issuer" {
  description = "The cluster's OIDC issuer without https://, oidc.eks.REGION.amazonaws.com/id/ID."
  type        = string
}

variable "edge_namespace" {
  description = "Namespace of the edge's ServiceAccount (deploy/k8s/base)."
  type        = string
  default     = "mlmon"
}

variable "edge_service_account" {
  description = "The edge's ServiceAccount (deploy/k8s/base/serviceaccount.yaml)."
  type        = string
  default     = "mlmon-edge"
}

variable "server_service_account" {
  description = "mlmon server's ServiceAccount (deploy/k8s/server/base/serviceaccount.yaml), in edge_namespace; it assumes the reader role."
  type        = string
  default     = "mlmon-server"
}

variable "workflow_service_account" {
  description = "The ServiceAccount of the alerts and registry-watch CronJobs (deploy/k8s/workflow/serviceaccount.yaml), in edge_namespace; it assumes the workflow role."
  type        = string
  default     = "mlmon-workflow"
}

variable "reader_principal_arns" {
  description = "Who may assume the reader role (analysts, the reports job's role)."
  type        = list(string)
}

variable "maintenance_principal_arns" {
  description = "Who may assume the maintenance role (retention, off-boarding operators)."
  type        = list(string)
}

variable "metrics_retention_days" {
  description = "Object-age expiry of the metric tables (mlmon retention default: 90 days)."
  type        = number
  default     = 90
}

variable "vpc_id" {
  description = "VPC of the cluster, for the S3 and STS interface endpoints."
  type        = string
}

variable "endpoint_subnet_ids" {
  description = "Subnets of the interface endpoints (their addresses go into the cloud overlay's NetworkPolicy)."
  type        = list(string)
}

variable "endpoint_security_group_ids" {
  description = "Security groups of the interface endpoints (allow TCP 443 from the cluster's pods)."
  type        = list(string)
}

// datsync workers as an Azure Container Apps event-driven job: the environment's KEDA polls
// THE SCALE QUERY (the chunks submitted and not yet committed) and starts executions of
// `datsync worker --exit-when-idle` while chunks are pending. Each execution takes pending
// chunks (FOR UPDATE SKIP LOCKED), loads each in one transaction with its ledger row, finalizes
// a sync whose last chunk it committed, and exits 0 once the queue stayed empty for
// --max-idle. A replica that dies (timeout, scale-in, crash) rolls its transactions back: its
// chunks are pending again, for the next execution.
//
//   az deployment group create -g <resource-group> -f deploy/container-apps/main.bicep \
//     -p environmentName=<Container Apps environment> image=<registry>/datsync:<tag> \
//        databaseUrl=<postgresql://…> storageConnectionString=<the checkpoints' account>
//
// Files are submitted by `datsync submit` (by hand, from `watch`'s machine, or by the Functions
// app of deploy/azure-functions above DATSYNC_SUBMIT_ABOVE) with CHECKPOINT_BASE_PATH on
// az://, so every execution reads the chunks where sync_metadata records them.

@description('The Container Apps environment the job runs in (it must reach the database).')
param environmentName string

@description('The job\'s name.')
param jobName string = 'datsync-worker'

@description('The datsync image (the repository\'s Dockerfile).')
param image string

@description('The workers\' connection (DATABASE_URL): a role with the grants of `datsync init-db --print-sql --role <role>`.')
@secure()
param databaseUrl string

@description('The scale rule\'s connection (KEDA\'s pgx reads it): a role with SELECT on the queue is enough. Empty: databaseUrl.')
@secure()
param scalerDatabaseUrl string = ''

@description('The account of the az:// checkpoints (AzureWebJobsStorage).')
@secure()
param storageConnectionString string

@description('The most executions at once: each holds concurrency + 1 database connections. Size it to the database server (ARCHITECTURE.md, "Where scaling stops").')
param maxExecutions int = 8

@description('Chunks each worker loads at once (--concurrency).')
param concurrency int = 2

param location string = resourceGroup().location

resource environment 'Microsoft.App/managedEnvironments@2024-03-01' existing = {
  name: environmentName
}

resource worker 'Microsoft.App/jobs@2024-03-01' = {
  name: jobName
  location: location
  properties: {
    environmentId: environment.id
    configuration: {
      triggerType: 'Event'
      // At most 6 hours per execution; a replica stopped then (or killed sooner) loses
      // nothing: the chunks in flight roll back and wait for the next execution.
      replicaTimeout: 21600
      // A worker that exits with an error is started again at most twice.
      replicaRetryLimit: 2
      eventTriggerConfig: {
        // One worker per execution; the scale rule decides how many executions run.
        parallelism: 1
        replicaCompletionCount: 1
        scale: {
          minExecutions: 0
          maxExecutions: maxExecutions
          // Seconds between two runs of the scale query.
          pollingInterval: 15
          rules: [
            {
              name: 'pending-chunks'
              type: 'postgresql'
              metadata: {
                // THE SCALE QUERY (`datsync queue --json` prints the same count as
                // "pending"); another profile's schema: "<schema>".chunk_queue. It counts a
                // chunk until the transaction that commits it deletes its row, so chunks
                // being loaded count too, and the executions running are subtracted; not the
                // chunks given up after their attempts.
                query: 'SELECT count(*) FROM "public".chunk_queue WHERE failed_at IS NULL'
                // One execution per this many pending chunks.
                targetQueryValue: '4'
                // The first execution starts when more than this many chunks are pending.
                activationTargetQueryValue: '0'
              }
              auth: [
                {
                  secretRef: 'scaler-database-url'
                  triggerParameter: 'connection'
                }
              ]
            }
          ]
        }
      }
      // An image in a private registry: add `registries` (server, and identity or
      // username/passwordSecretRef) here.
      // Or Key Vault references (keyVaultUrl and identity instead of value).
      secrets: [
        {
          name: 'database-url'
          value: databaseUrl
        }
        {
          name: 'scaler-database-url'
          value: empty(scalerDatabaseUrl) ? databaseUrl : scalerDatabaseUrl
        }
        {
          name: 'azure-storage'
          value: storageConnectionString
        }
      ]
    }
    template: {
      containers: [
        {
          name: 'worker'
          image: image
          args: [
            '--log-format'
            'json'
            'worker'
            '--exit-when-idle'
            '--max-idle'
            '60s'
            '--concurrency'
            '${concurrency}'
          ]
          env: [
            {
              name: 'DATABASE_URL'
              secretRef: 'database-url'
            }
            {
              // Workers find each sync's chunks where sync_metadata.checkpoint_location
              // says (the az:// URL submit wrote them to), in this account.
              name: 'AzureWebJobsStorage'
              secretRef: 'azure-storage'
            }
            {
              name: 'RUST_LOG'
              value: 'info'
            }
          ]
          resources: {
            // About 2 × CHUNK_BYTES + 50 MB per chunk in flight (README, memory).
            cpu: json('1.0')
            memory: '2Gi'
          }
        }
      ]
    }
  }
}

output jobName string = worker.name

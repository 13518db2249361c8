// The events datsync's Functions app runs on: Event Grid `BlobCreated` (and, with a
// hierarchical namespace, `BlobRenamed`) events for the sources of one folder, delivered to a
// Storage queue that the `ztdwr_blob_created` function reads. No blob content passes through
// the Functions host: the handler reads the blob by the URL in the event.
//
//   az deployment group create -g <resource-group> -f deploy/azure-functions/infra/main.bicep \
//     -p storageAccountName=<the account of AzureWebJobsStorage>
//
// A storage account has at most one Event Grid system topic: if it has one already, pass its
// name as systemTopicName with createSystemTopic=false.

@description('The storage account that holds the sources and the queues (the Functions app\'s AzureWebJobsStorage).')
param storageAccountName string

@description('The container of the sources (the handler\'s --container / DATSYNC_BLOB_CONTAINER).')
param containerName string = 'data'

@description('The folder of the sources in the container, with its trailing slash (--prefix / DATSYNC_BLOB_PREFIX).')
param prefix string = 'hex-ztdwr/'

@description('The queue the events go to: the queueName of ztdwr_blob_created/function.json.')
param queueName string = 'ztdwr-blob-created'

@description('The Event Grid system topic of the storage account.')
param systemTopicName string = '${storageAccountName}-events'

@description('Create the system topic (false: it exists already under systemTopicName).')
param createSystemTopic bool = true

@description('Where events that cannot be delivered to the queue are kept.')
param deadLetterContainerName string = 'eventgrid-deadletter'

param location string = resourceGroup().location

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource queue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = {
  parent: queueService
  name: queueName
}

// Where the Functions host moves a message it gave up on (its name is the host's rule);
// ztdwr_blob_created_poison reads it and parks the receipt with an alert.
resource poisonQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = {
  parent: queueService
  name: '${queueName}-poison'
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' existing = {
  parent: storage
  name: 'default'
}

resource deadLetter 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deadLetterContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource newTopic 'Microsoft.EventGrid/systemTopics@2022-06-15' = if (createSystemTopic) {
  name: systemTopicName
  location: location
  properties: {
    source: storage.id
    topicType: 'Microsoft.Storage.StorageAccounts'
  }
}

resource topic 'Microsoft.EventGrid/systemTopics@2022-06-15' existing = {
  name: systemTopicName
}

resource subscription 'Microsoft.EventGrid/systemTopics/eventSubscriptions@2022-06-15' = {
  parent: topic
  name: 'datsync-${queueName}'
  dependsOn: [
    newTopic
    queue
    deadLetter
  ]
  properties: {
    eventDeliverySchema: 'EventGridSchema'
    destination: {
      endpointType: 'StorageQueue'
      properties: {
        resourceId: storage.id
        queueName: queueName
        // Seven days; the handler's sweep finds whatever expires or is lost.
        queueMessageTimeToLiveInSeconds: 604800
      }
    }
    filter: {
      includedEventTypes: [
        'Microsoft.Storage.BlobCreated'
        'Microsoft.Storage.BlobRenamed'
      ]
      subjectBeginsWith: '/blobServices/default/containers/${containerName}/blobs/${prefix}'
      isSubjectCaseSensitive: false
      advancedFilters: [
        {
          // Sources only (string filters ignore case): .dat and .dat.gz.
          operatorType: 'StringEndsWith'
          key: 'subject'
          values: [
            '.dat'
            '.dat.gz'
          ]
        }
        {
          // The content is committed (CreateFile and SftpCreate announce an empty file).
          operatorType: 'StringIn'
          key: 'data.api'
          values: [
            'PutBlob'
            'PutBlockList'
            'CopyBlob'
            'FlushWithClose'
            'SftpCommit'
            'RenameFile'
            'SftpRename'
          ]
        }
      ]
    }
    retryPolicy: {
      maxDeliveryAttempts: 30
      eventTimeToLiveInMinutes: 1440
    }
    deadLetterDestination: {
      endpointType: 'StorageBlob'
      properties: {
        resourceId: storage.id
        blobContainerName: deadLetterContainerName
      }
    }
  }
}

output queueName string = queue.name
output poisonQueueName string = poisonQueue.name

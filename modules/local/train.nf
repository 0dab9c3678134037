// DeepFinder training on the training pairs, validated on the validation pairs (Tab. 2).
process TRAIN {
    tag "deepfinder"
    label 'process_high'
    label 'process_gpu'
    container "${params.container_prefix}-deepfinder-train:${params.container_tag}"

    input:
    path train_tomograms, stageAs: 'data/train/t???/*'
    path train_targets,   stageAs: 'data/train/l???/*'   // targets folders (targets.mrc + targets.json)
    path val_tomograms,   stageAs: 'data/val/t???/*'
    path val_targets,     stageAs: 'data/val/l???/*'

    output:
    path "train/{model.h5,model_card.json}", emit: model   // the card (patch, voxel size, cut) travels with the weights
    path "train/*",        emit: files
    path "versions.yml",   emit: versions

    script:
    def args = task.ext.args ?: ''
    def as_list = { x -> x instanceof List ? x : (x ? [x] : []) }
    def pairs = [as_list(train_tomograms), as_list(train_targets)].transpose().collect { t, l -> "--tomogram ${t} --targets ${l}/targets.mrc" }.join(' ')
    def val_pairs = [as_list(val_tomograms), as_list(val_targets)].transpose().collect { t, l -> "--val-tomogram ${t} --val-targets ${l}/targets.mrc" }.join(' ')
    """
    templearn-deepfinder-train train ${pairs} ${val_pairs} --out train --seed ${params.seed} ${args}

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        templearn: \$(python -c 'import templearn; print(templearn.__version__)')
    END_VERSIONS
    """

    stub:
    """
    mkdir -p train && touch train/model.h5 train/model_card.json
    echo '"${task.process}": {templearn: stub}' > versions.yml
    """
}
